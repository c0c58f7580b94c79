"""Image-folder datasets: `<class folder>/<image file>`, as a directory or a zip.

The original studies stored their data this way (mnistTask3.zip with
folders 0..9; the photo set with folders Sample001..Sample062). Reading
is strict: a file that is not a readable image, a folder that is not a
known class, or a class with no images stops with an error naming it.
"""

import contextlib
import functools
import io
import pathlib
import zipfile
from collections.abc import Callable

import numpy as np
from PIL import Image

from jaxdigits.data.errors import DataError

_IGNORED = ("__MACOSX",)
MAX_PIXELS = 50_000_000  # a 50-megapixel photo; larger claims are refused before decoding
MAX_FILE_BYTES = 2**27  # 128 MiB: a zip member claiming more is a zip bomb, not an image


def _is_hidden(parts: tuple[str, ...]) -> bool:
    return any(p.startswith(".") or p in _IGNORED for p in parts)


def _entries(path: pathlib.Path, stack: contextlib.ExitStack) -> list[tuple[tuple, Callable]]:
    """(relative path parts, reader of the bytes) for every file under `path`."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return [(f.relative_to(path).parts, f.read_bytes) for f in files]
    if zipfile.is_zipfile(path):
        try:
            zf = stack.enter_context(zipfile.ZipFile(path))
        except Exception as e:  # a corrupt directory raises BadZipFile, but also other types
            raise DataError(f"{path}: not a readable zip file ({type(e).__name__}: {e})") from e
        # not i.is_dir(): it raises IndexError on a member with an empty name
        infos = sorted(
            (i for i in zf.infolist() if not i.filename.endswith("/")), key=lambda i: i.filename
        )
        return [
            (tuple(i.filename.split("/")), functools.partial(_read_member, zf, i)) for i in infos
        ]
    if path.exists():
        raise DataError(f"{path}: neither a folder nor a zip file")
    else:
        raise DataError(f"{path}: no such folder or zip file")


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    if info.file_size > MAX_FILE_BYTES:  # zipfile stops at the declared size: checking it is enough
        raise ValueError(f"unzips to {info.file_size} bytes, over the {MAX_FILE_BYTES} allowed")
    return zf.read(info)


def _strip_common_root(items):
    """Drops one top folder holding the class folders (e.g. `mnistTask3/0/x.png`)."""
    tops = {parts[0] for parts, _ in items}
    if items and len(tops) == 1 and all(len(parts) == 3 for parts, _ in items):
        return [(parts[1:], read) for parts, read in items]
    return items


def _decode(name: str, data: bytes, size: tuple[int, int] | None, invert: bool) -> np.ndarray:
    """Untrusted bytes to uint8 [H, W]. PIL raises many types on bad bytes (SyntaxError,
    struct.error, EOFError, DecompressionBombError, ...): each one means "not an image"."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_PIXELS:  # checked before any pixel is allocated
                raise DataError(
                    f"{name}: image is {img.width}x{img.height}, over {MAX_PIXELS} pixels"
                )
            img = img.convert("L")
            if size is not None and img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), Image.BILINEAR)
            array = np.asarray(img, np.uint8)
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"{name}: not a readable image ({type(e).__name__}: {e})") from e
    return 255 - array if invert else array


def read(
    path: str | pathlib.Path,
    classes: dict[str, int],
    *,
    size: tuple[int, int] | None = None,
    invert: bool = False,
    extra_folders_ok: bool = False,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Reads an image-folder dataset.

    Args:
      path: a folder or a zip of `<class>/<file>` entries.
      classes: folder name -> integer label.
      size: (height, width) to resize every image to; None keeps the native
        size, which must then be the same for all images.
      invert: store 255 - pixel (dark-on-light photos -> white-on-black).
      extra_folders_ok: ignore folders not in `classes` (the photo set has
        letters beside the digits) instead of stopping.

    Returns:
      images uint8 [N, H, W], labels int32 [N], file names (as in the source).
    """
    path = pathlib.Path(path)
    with contextlib.ExitStack() as stack:
        items = [(p, r) for p, r in _entries(path, stack) if not _is_hidden(p)]
        images, labels, names = _decode_all(
            path, _strip_common_root(items), classes, size, invert, extra_folders_ok
        )
    counts = np.bincount(np.asarray(labels, np.int64), minlength=max(classes.values()) + 1)
    for folder, label in sorted(classes.items()):
        if counts[label] == 0:
            raise DataError(f"{path}/{folder}: class folder is missing or holds no images")
    return np.stack(images), np.asarray(labels, np.int32), names


def read_files(path: str | pathlib.Path, size: tuple[int, int]) -> tuple[np.ndarray, list[str]]:
    """Every image under a folder or zip, at any depth and whatever its folder is called:
    (images uint8 [N, H, W] of `size`, each file's path inside `path`), in path order. Hidden
    files are skipped, as is one top folder holding everything (`mnistTask3/0/x.png`)."""
    path = pathlib.Path(path)
    with contextlib.ExitStack() as stack:
        items = _strip_common_root([(p, r) for p, r in _entries(path, stack) if not _is_hidden(p)])
        if not items:
            raise DataError(f"{path}: holds no image files")
        images, names = [], []
        for parts, read_bytes in items:
            name = "/".join(parts)
            try:
                raw = read_bytes()
            except Exception as e:  # a bad zip member, as in _decode_all
                raise DataError(f"{path}/{name}: cannot read ({type(e).__name__}: {e})") from e
            image = _decode(f"{path}/{name}", raw, None, False)
            if image.shape != tuple(size):
                height, width = image.shape
                raise DataError(
                    f"{path}/{name}: image is {width}x{height}, expected {size[1]}x{size[0]}"
                )
            images.append(image)
            names.append(name)
    return np.stack(images), names


def _decode_all(path, items, classes, size, invert, extra_folders_ok):
    images, labels, names = [], [], []
    for parts, read_bytes in items:
        name = f"{path}/{'/'.join(parts)}"
        if len(parts) != 2:
            raise DataError(f"{name}: expected <class folder>/<image file>")
        folder = parts[0]
        if folder not in classes:
            if extra_folders_ok:
                continue
            raise DataError(
                f"{path}/{folder}: folder name is not a class (expected one of "
                f"{', '.join(sorted(classes))})"
            )
        try:
            raw = read_bytes()
        except Exception as e:  # a bad zip member: BadZipFile, zlib.error, NotImplementedError, ...
            raise DataError(f"{name}: cannot read ({type(e).__name__}: {e})") from e
        image = _decode(name, raw, size, invert)
        if images and image.shape != images[0].shape:
            raise DataError(
                f"{name}: image is {image.shape[1]}x{image.shape[0]}, but {names[0]} is "
                f"{images[0].shape[1]}x{images[0].shape[0]}; all images must share one size"
            )
        images.append(image)
        labels.append(classes[folder])
        names.append(name)
    return images, labels, names


def write(path: str | pathlib.Path, images: np.ndarray, folders: list[str], names: list[str]):
    """Writes images as PNGs under `path/<folder>/<name>.png` (or a zip if path ends in .zip)."""
    path = pathlib.Path(path)

    def png(image):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        return buffer.getvalue()

    if path.suffix == ".zip":
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".zip.partial")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
            for image, folder, name in zip(images, folders, names, strict=True):
                zf.writestr(f"{path.stem}/{folder}/{name}.png", png(image))
        tmp.replace(path)  # never leave a half-written zip under the final name
        return
    for folder in sorted(set(folders)):
        (path / folder).mkdir(parents=True, exist_ok=True)
    for image, folder, name in zip(images, folders, names, strict=True):
        (path / folder / f"{name}.png").write_bytes(png(image))
