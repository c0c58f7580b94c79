"""compile_cache: where the cache goes, and a folder left behind by a killed process."""

import jax
import jax.numpy as jnp
import pytest

from jaxdigits.runtime import compile_cache


@pytest.fixture
def restore_cache():
    yield
    compile_cache.setup()  # the session's cache, as tests/conftest.py set it


def test_resolve_reads_the_flag_then_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(compile_cache.ENV, raising=False)
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compile_cache.resolve() == tmp_path / "xdg" / "jaxdigits" / "jax"
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "jax"))
    assert compile_cache.resolve() == tmp_path / "jax"
    monkeypatch.setenv(compile_cache.ENV, "Off")
    assert compile_cache.resolve() is None
    assert compile_cache.resolve(str(tmp_path / "flag")) == tmp_path / "flag"


def test_an_entry_without_its_time_file_is_dropped_and_writes_go_on(tmp_path, restore_cache):
    """A program file whose -atime was never written (its writer was killed) made every later
    write fail; setup deletes it and keeps complete entries."""
    folder = tmp_path / "cache"
    folder.mkdir()
    (folder / "jit_orphan-0-cache").write_bytes(b"half a program")
    (folder / "jit_kept-1-cache").write_bytes(b"a program")
    (folder / "jit_kept-1-atime").write_bytes((1).to_bytes(8, "little"))
    assert compile_cache.setup(str(folder)) == folder
    assert not (folder / "jit_orphan-0-cache").exists()
    assert (folder / "jit_kept-1-cache").exists()

    jax.jit(lambda x: x * 3.0 + 1.0)(jnp.arange(7.0)).block_until_ready()
    written = {p.name for p in folder.glob("*-cache")} - {"jit_kept-1-cache"}
    assert written, "the new program was not written to the cache"
    for name in written:
        assert (folder / name.replace("-cache", "-atime")).exists()
