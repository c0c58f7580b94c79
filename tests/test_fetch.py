"""MNIST when it is missing (jaxdigits/data/fetch.py), without the internet: a local HTTP
server on 127.0.0.1 (or a file:// folder) serves the four .gz files as a mirror would."""

import functools
import gzip
import http.server
import pathlib
import threading

import numpy as np
import pytest
from helpers_data import NEEDS_MNIST

from jaxdigits import data, defaults
from jaxdigits.data import DataError, fetch, mnist
from jaxdigits.runtime import validate

pytestmark = NEEDS_MNIST
ROOT = pathlib.Path(__file__).resolve().parents[1]


class Mirror:
    """An HTTP server of one folder, counting the requests it answers."""

    def __init__(self, folder):
        self.requests = []
        mirror = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):
                mirror.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):  # quiet
                pass

        handler = functools.partial(Handler, directory=str(folder))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def shared():
    return mnist.data_dir(fetch=False)  # the suite's MNIST folder


@pytest.fixture
def mirror(shared):
    served = Mirror(shared)
    yield served
    served.close()


@pytest.fixture
def cache(tmp_path, monkeypatch, shared):
    """No MNIST folder named (`shared` is read before), an empty cache, no mirror set."""
    monkeypatch.delenv(mnist.ENV_VAR)
    monkeypatch.delenv(fetch.MIRROR_ENV, raising=False)
    monkeypatch.setenv(fetch.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def _same_mnist(folder, shared):
    for split in ("train", "test"):
        for a, b in zip(
            mnist.load(split, str(folder)), mnist.load(split, str(shared)), strict=True
        ):
            np.testing.assert_array_equal(a, b)


def test_fetched_once_checked_then_read_from_the_cache(cache, mirror, shared):
    assert fetch.locate(mirror=mirror.url) == cache
    assert sorted(p.name for p in cache.iterdir()) == sorted(fetch.NAMES)  # nothing else
    assert sorted(mirror.requests) == sorted(f"/{n}.gz" for n in fetch.NAMES)
    _same_mnist(cache, shared)
    assert fetch.locate(mirror=mirror.url) == cache
    assert len(mirror.requests) == 4  # the second time: no request


def test_the_first_mirror_that_answers_is_used(cache, mirror, shared, monkeypatch, tmp_path):
    (tmp_path / "empty").mkdir()
    dead = Mirror(tmp_path / "empty")  # answers 404 to everything
    monkeypatch.setattr(fetch, "MIRRORS", (dead.url, mirror.url))
    try:
        assert mnist.data_dir() == cache  # no folder named: the default mirrors
    finally:
        dead.close()
    assert len(dead.requests) == 4 and len(mirror.requests) == 4
    _same_mnist(cache, shared)


def test_a_file_mirror_from_the_environment(cache, shared, monkeypatch):
    monkeypatch.setenv(fetch.MIRROR_ENV, shared.as_uri())
    assert fetch.locate() == cache
    _same_mnist(cache, shared)


def test_a_corrupt_download_is_refused_and_nothing_is_left_half_written(cache, shared, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in fetch.NAMES:
        raw = (shared / f"{name}.gz").read_bytes()
        if name == "t10k-labels-idx1-ubyte":
            labels = gzip.decompress(raw)
            raw = gzip.compress(labels[:-1] + bytes([(labels[-1] + 1) % 10]))  # one changed
        (bad / f"{name}.gz").write_bytes(raw)
    served = Mirror(bad)
    try:
        with pytest.raises(DataError) as e:
            fetch.locate(mirror=served.url)
    finally:
        served.close()
    message = str(e.value)
    assert "t10k-labels-idx1-ubyte.gz" in message and "checksum mismatch" in message
    assert "\n" not in message and mnist.ENV_VAR in message  # one line, says what to do
    assert "t10k-labels-idx1-ubyte" not in {p.name for p in cache.iterdir()}
    assert not list(cache.glob(".*"))  # no partial file


def test_offline_says_what_failed_and_where_to_put_the_files(cache, monkeypatch, tmp_path):
    monkeypatch.setattr(fetch, "TIMEOUT_S", 2)
    closed = Mirror(tmp_path)
    url = closed.url
    closed.close()  # nothing listens there any more
    with pytest.raises(DataError) as e:
        fetch.locate(mirror=url)
    message = str(e.value)
    assert message.startswith("MNIST: could not fetch train-images-idx3-ubyte.gz")
    assert url in message and "\n" not in message and "--config.data.mnist_dir" in message
    assert not [p for p in cache.iterdir()]


def test_a_named_folder_is_never_a_reason_to_fetch(cache, mirror, tmp_path, monkeypatch):
    monkeypatch.setenv(fetch.MIRROR_ENV, mirror.url)
    with pytest.raises(DataError, match="missing MNIST file"):
        mnist.load("test", str(tmp_path / "typo"))
    with pytest.raises(DataError, match="MNIST not found"):
        fetch.locate(source="idx")  # idx: a folder or an error, as before the cache
    assert mirror.requests == []


def test_a_run_without_a_data_folder_fetches_into_the_cache(cache, mirror, shared, monkeypatch):
    monkeypatch.setenv(fetch.MIRROR_ENV, mirror.url)
    cfg = defaults.from_file(ROOT / "configs" / "part3.py", "smoke")
    assert cfg.data.mnist_dir == "" and cfg.data.source == "auto"
    built = data.build(cfg.data)
    assert len(mirror.requests) == 4 and len(built.test_images) == cfg.data.test_limit
    monkeypatch.setenv(mnist.ENV_VAR, str(shared))  # the same set from the named folder
    np.testing.assert_array_equal(data.build(cfg.data).images, built.images)


def test_source_is_checked_with_the_config(monkeypatch):
    cfg = defaults.from_file(ROOT / "configs" / "part3.py", "smoke")
    cfg.data.source = "tfds"
    with pytest.raises(ValueError, match=r"config.data.source='tfds': must be one of 'auto'"):
        validate.check(cfg)


@pytest.mark.slow
def test_through_torchvision_into_the_same_cache(cache, mirror, shared, monkeypatch):
    """torchvision's own download (its mirror list pointed at ours, its md5 of the .gz files
    at those we serve), then our checksums and the cache."""
    datasets = pytest.importorskip("torchvision.datasets", reason="the torch extra")
    import hashlib

    resources = [
        (f"{n}.gz", hashlib.md5((shared / f"{n}.gz").read_bytes()).hexdigest()) for n in fetch.NAMES
    ]
    monkeypatch.setattr(datasets.MNIST, "mirrors", [mirror.url])
    monkeypatch.setattr(datasets.MNIST, "resources", resources)
    assert fetch.locate(source="torchvision") == cache
    assert sorted(p.name for p in cache.iterdir()) == sorted(fetch.NAMES)
    _same_mnist(cache, shared)


@pytest.mark.slow
def test_the_train_command_runs_with_no_data_folder_behind_a_local_mirror(cache, mirror):
    """A first run on a new machine: no $JAXDIGITS_DATA_DIR, MNIST from the mirror."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, **{fetch.MIRROR_ENV: mirror.url})
    assert mnist.ENV_VAR not in env
    args = [
        "--config=configs/part3.py:smoke",
        "--config.data.limit=200",
        "--config.steps_per_call=1",
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "jaxdigits.train", *args, f"--workdir={cache.parent / 'run'}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (cache.parent / "run" / "summary.json").is_file()
    assert sorted(p.name for p in cache.iterdir()) == sorted(fetch.NAMES)
