"""MNIST when it is missing: fetched once into a cache folder, checked, written atomically.

Where MNIST comes from (`config.data.source`):
- `auto` (default): the IDX files in --config.data.mnist_dir or $JAXDIGITS_DATA_DIR when
  either is set (nothing is fetched: a folder named on purpose that lacks the files is an
  error, not a reason to download elsewhere); else the cache folder; else the four `.gz`
  files from the first mirror that answers, into the cache.
- `idx`: only the named folder, as before there was a cache (an error when none is named).
- `torchvision`: fetched once through torchvision (its own mirrors), then kept in the
  cache like the others.

Not tensorflow-datasets: it serves MNIST in its own shuffled order, and the mislabeled set
and the digit-sum canvases pick MNIST images by their position in the files.

The cache is $JAXDIGITS_MNIST_CACHE, else $XDG_CACHE_HOME/jaxdigits/mnist
(~/.cache/jaxdigits/mnist). Mirrors: --config.data.mirror or $JAXDIGITS_MNIST_MIRROR (a base
URL holding the four .gz files; file:// works), else MIRRORS. Every file is checked against
the SHA-256 of the decompressed canonical MNIST file before it is renamed into place, so the
cache never holds a partial or a wrong file.
"""

import gzip
import hashlib
import io
import os
import pathlib
import tempfile
import urllib.error
import urllib.request
import zlib

import tqdm

from jaxdigits.data import mnist
from jaxdigits.data.errors import DataError

SOURCES = ("auto", "idx", "torchvision")
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
MIRROR_ENV = "JAXDIGITS_MNIST_MIRROR"
CACHE_ENV = "JAXDIGITS_MNIST_CACHE"
# SHA-256 of each decompressed file: the same whichever mirror or gzip level served it.
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
NAMES = tuple(SHA256)
TIMEOUT_S = 30


def cache_dir() -> pathlib.Path:
    if os.environ.get(CACHE_ENV):
        return pathlib.Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "jaxdigits" / "mnist"


def locate(mnist_dir: str = "", source: str = "auto", mirror: str = "") -> pathlib.Path:
    """The folder to read MNIST's IDX files from, fetching them first if `source` says so."""
    if source not in SOURCES:
        raise DataError(f"config.data.source={source!r}: expected one of {', '.join(SOURCES)}")
    if source == "idx" or (source == "auto" and (mnist_dir or os.environ.get(mnist.ENV_VAR))):
        return mnist.data_dir(mnist_dir, fetch=False)
    cache = cache_dir()
    if all((cache / name).is_file() for name in NAMES):
        return cache
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"{cache}: cannot create the MNIST cache ({e.strerror}); {_hint()}") from e
    missing = [name for name in NAMES if not (cache / name).is_file()]
    if source == "auto":
        chosen = mirror or os.environ.get(MIRROR_ENV, "")
        bases = [chosen] if chosen else MIRRORS
        for name in missing:
            _keep(cache, name, _download(name, bases))
    else:
        for name, raw in _from_torchvision(cache).items():
            _keep(cache, name, raw)
    return cache


def _hint() -> str:
    return (
        f"put the four IDX files in a folder and point ${mnist.ENV_VAR} (or "
        "--config.data.mnist_dir) at it"
    )


def _download(name: str, bases) -> bytes:
    """The decompressed bytes of NAME.gz from the first of `bases` that serves a good copy."""
    failures = []
    for base in bases:
        url = base.rstrip("/") + f"/{name}.gz"
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                buf = io.BytesIO()
                with tqdm.tqdm(total=total, unit="B", unit_scale=True, desc=f"{name}.gz") as bar:
                    while chunk := response.read(1 << 16):
                        buf.write(chunk)
                        bar.update(len(chunk))
            raw = gzip.decompress(buf.getvalue())
        except (urllib.error.URLError, OSError, EOFError, zlib.error, ValueError) as e:
            failures.append(f"{url}: {getattr(e, 'reason', e)}")
            continue
        if _sha256(raw) == SHA256[name]:
            return raw
        failures.append(f"{url}: checksum mismatch (not the MNIST file)")
    raise DataError(f"MNIST: could not fetch {name}.gz ({'; '.join(failures)}); {_hint()}")


def _sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _keep(cache: pathlib.Path, name: str, raw: bytes) -> None:
    """Checks `raw` and renames it into the cache: a reader never sees half a file."""
    if _sha256(raw) != SHA256[name]:
        raise DataError(f"MNIST {name}: checksum mismatch (not the MNIST file); {_hint()}")
    fd, tmp = tempfile.mkstemp(dir=cache, prefix=f".{name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        mnist.read_idx(pathlib.Path(tmp))  # the shape in the header matches the data
        os.replace(tmp, cache / name)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _from_torchvision(cache: pathlib.Path) -> dict[str, bytes]:
    try:
        from torchvision.datasets import MNIST
    except ImportError as e:
        raise DataError(
            "config.data.source='torchvision' needs torchvision (pip install -e '.[torch]')"
        ) from e
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        try:
            for train in (True, False):
                MNIST(tmp, train=train, download=True)
        except (RuntimeError, OSError, urllib.error.URLError) as e:
            raise DataError(f"MNIST through torchvision: {e}; {_hint()}") from e
        raw = pathlib.Path(tmp) / "MNIST" / "raw"
        return {name: (raw / name).read_bytes() for name in NAMES}
