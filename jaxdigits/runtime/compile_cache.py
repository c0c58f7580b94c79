"""JAX's persistent compilation cache, on by default for the trainer, the bench and the tests.

Short runs are mostly XLA compiling (figures in docs/speed.md); with the cache a second
run of the same programs reads them from disk. XLA keys each entry on the program, the
compiler options, the backend and the versions of jax and jaxlib, so a stale entry is
never used.

Where: $JAXDIGITS_COMPILATION_CACHE, else JAX's own $JAX_COMPILATION_CACHE_DIR, else
$XDG_CACHE_HOME/jaxdigits/jax (~/.cache/jaxdigits/jax). The value "off" (or "none", "0",
"false") turns it off. The folder is kept under MAX_BYTES: JAX deletes the entries read
longest ago beyond that.

JAX writes an entry as two files, the program (`KEY-cache`) and then its last-read time
(`KEY-atime`). A process killed between the two leaves a program without its time, and
from then on every write to the folder fails (JAX reads every entry's time to decide what
to evict) with one warning per program: the cache silently stops growing. `setup` deletes
such entries first.
"""

import os
import pathlib

import jax
from jax.experimental.compilation_cache import compilation_cache

ENV = "JAXDIGITS_COMPILATION_CACHE"
OFF = ("off", "none", "0", "false")
MAX_BYTES = 4 << 30


def default_dir() -> pathlib.Path:
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "jaxdigits" / "jax"


def resolve(path: str | None = None) -> pathlib.Path | None:
    """The cache folder for `path` (a flag's value; None or "" reads the environment), or None
    when the cache is off."""
    value = path or os.environ.get(ENV) or os.environ.get("JAX_COMPILATION_CACHE_DIR")
    if value and value.strip().lower() in OFF:
        return None
    return pathlib.Path(value).expanduser() if value else default_dir()


def setup(path: str | None = None) -> pathlib.Path | None:
    """Points JAX's compilation cache at `resolve(path)` and caches every program (JAX's
    default skips those that compile in under a second: most of ours on a GPU). Call it
    before anything compiles. Returns the folder, or None when off."""
    folder = resolve(path)
    compilation_cache.reset_cache()  # JAX opens the folder on first use; a new one takes over
    if folder is None:
        jax.config.update("jax_compilation_cache_dir", None)
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a read-only home: run without the cache, say so once
        print(f"warning: no compilation cache ({folder}: {e.strerror}); set {ENV}=DIR or off")
        jax.config.update("jax_compilation_cache_dir", None)
        return None
    drop_unfinished(folder)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
    return folder


def drop_unfinished(folder: pathlib.Path) -> int:
    """Deletes the entries whose writer died before their time file; returns how many."""
    dropped = 0
    for program in folder.glob("*-cache"):
        if not program.with_name(program.name.removesuffix("-cache") + "-atime").exists():
            try:
                program.unlink()
                dropped += 1
            except FileNotFoundError:  # another process got there first
                pass
    return dropped


def define_flag():
    """--compilation_cache on an absl command line (read it with setup)."""
    from absl import flags

    flags.DEFINE_string(
        "compilation_cache",
        "",
        f"Folder of JAX's compilation cache, or 'off' (default: ${ENV}, else "
        f"$JAX_COMPILATION_CACHE_DIR, else {default_dir()}).",
    )
