"""Killed, stopped and restarted runs end exactly where an uninterrupted run ends.

Every run here is a real `python -m jaxdigits.train` process (through
tests/fault_run.py, which only picks the moment of the fault) of a small
config: 3 epochs of 5 steps in calls of 2, 2 and 1 steps, two seeds. The
uninterrupted reference run compiles into the suite's compilation cache; the other
processes, killed on purpose, write a private copy of it, which already holds the
reference's programs: none of them compiles.
"""

import os
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest
from helpers_data import NEEDS_MNIST
from helpers_runs import assert_same_run

from jaxdigits import checkpoint
from jaxdigits.runtime import compile_cache

ROOT = pathlib.Path(__file__).resolve().parents[1]
ARGS = [
    "--config=configs/part3_complementary_cnn.py:smoke",
    "--config.num_epochs=3",
    "--config.steps_per_call=2",
]
pytestmark = [pytest.mark.slow, NEEDS_MNIST]


@pytest.fixture(scope="module")
def env(tmp_path_factory, reference):
    cache = tmp_path_factory.mktemp("jax_cache")
    copy_finished_entries(compile_cache.resolve(), cache)
    return dict(
        os.environ,
        JAX_COMPILATION_CACHE_DIR=str(cache),
        JAXDIGITS_COMPILATION_CACHE=str(cache),  # killed runs never write the user's cache
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
    )


def copy_finished_entries(source, target):
    """Copies the entries of JAX's cache folder `source` whose writer finished them: a
    program's time file is written after it (jaxdigits/runtime/compile_cache.py), and
    another test process may be writing to `source` now."""
    if source is None or not source.is_dir():
        return
    for written in source.glob("*-atime"):
        program = written.with_name(written.name.removesuffix("-atime") + "-cache")
        try:
            shutil.copyfile(program, target / program.name)
            shutil.copyfile(written, target / written.name)
        except FileNotFoundError:  # evicted meanwhile, or never finished
            (target / program.name).unlink(missing_ok=True)


def command(workdir):
    return [sys.executable, str(ROOT / "tests" / "fault_run.py"), *ARGS, f"--workdir={workdir}"]


def run(workdir, env, fault=None) -> subprocess.CompletedProcess:
    env = dict(env, JAXDIGITS_FAULT=fault or "")
    return subprocess.run(
        command(workdir), cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )


def last_line(proc) -> str:
    return proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run, never killed: it reads and writes the suite's cache."""
    workdir = tmp_path_factory.mktemp("uninterrupted")
    proc = run(workdir, os.environ)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return workdir


def steps_on_disk(workdir, name="checkpoints"):
    directory = workdir / name
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_sigkill_at_each_point_then_restart_gives_the_uninterrupted_run(reference, env, tmp_path):
    def killed(fault):
        proc = run(tmp_path, env, fault)
        assert proc.returncode == -signal.SIGKILL, (fault, proc.returncode, proc.stderr[-2000:])
        return proc

    killed("kill-after-call:2")  # mid epoch 1, before any checkpoint
    assert steps_on_disk(tmp_path) == []

    killed("kill-before-commit:checkpoints:1")  # mid-write: files in a temporary directory
    (tmp,) = steps_on_disk(tmp_path)
    assert tmp.startswith("1.orbax-checkpoint-tmp")
    assert steps_on_disk(tmp_path, "best") == ["1"]  # saved just before: dropped on restart

    killed("kill-before-save:checkpoints:2")  # epoch 2's best params saved, its state not
    assert steps_on_disk(tmp_path) == ["1"]

    killed("kill-before-manifest:checkpoints:2")  # committed, no manifest: trusted if it restores
    assert steps_on_disk(tmp_path) == ["1", "2"]
    assert not (tmp_path / "checkpoints" / "2" / checkpoint.MANIFEST).exists()

    killed("kill-after-call:2")  # mid epoch 3

    # and at an arbitrary moment, from outside, while it starts, restores or trains
    proc = subprocess.Popen(command(tmp_path), cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    time.sleep(random.Random(os.getpid()).uniform(0.5, 6.0))
    proc.kill()
    proc.wait(timeout=60)

    proc = run(tmp_path, env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_same_run(reference, tmp_path)
    assert steps_on_disk(tmp_path) == ["2", "3"]  # no temporary directory left behind


def test_sigterm_and_sigint_save_and_exit_then_resume_exactly(reference, env, tmp_path):
    proc = run(tmp_path, env, "signal-after-call:TERM:2")
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr[-2000:]
    assert last_line(proc).startswith("stopped by SIGTERM at step 4 of 5 in epoch 1;"), proc.stderr
    assert "Traceback" not in proc.stderr
    assert steps_on_disk(tmp_path, "partial") == ["1"] and steps_on_disk(tmp_path) == []

    # resumes at step 4 of epoch 1: call 1 ends epoch 1, calls 2 and 3 run epoch 2's steps 1-4
    proc = run(tmp_path, env, "signal-after-call:INT:1")
    assert proc.returncode == 128 + signal.SIGINT, proc.stderr[-2000:]
    assert "resuming epoch 1 after step 4" in proc.stdout
    assert last_line(proc).startswith("stopped by SIGINT after epoch 1;")
    assert steps_on_disk(tmp_path) == ["1"] and steps_on_disk(tmp_path, "partial") == []

    proc = run(tmp_path, env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_same_run(reference, tmp_path)
