"""Data parallel across processes: 2 processes on loopback, one CPU device each, train the
smoke config together and end exactly where 1 process with 2 local devices ends."""

import os
import pathlib
import socket
import subprocess
import sys

import pytest
from helpers_data import NEEDS_MNIST
from helpers_runs import assert_same_run, metric_lines

from jaxdigits import output

ROOT = pathlib.Path(__file__).resolve().parents[1]
ARGS = [
    "--config=configs/part3_complementary_cnn.py:smoke",
    "--config.parallel=data",
    "--config.seeds=(0,)",
    "--config.steps_per_call=1",  # small programs: compiling dominates these runs
    "--config.data.limit=400",  # 2 steps of 128 per epoch
    "--config.num_epochs=2",
]
pytestmark = [pytest.mark.slow, NEEDS_MNIST]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(workdir, *extra, env=None):
    cmd = [sys.executable, "-m", "jaxdigits.train", *ARGS, f"--workdir={workdir}", *extra]
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finish(procs, timeout=900):
    try:
        outs = [p.communicate(timeout=timeout)[0] for p in procs]
    finally:
        for p in procs:  # a peer that failed must not leave the other waiting
            p.kill()
    for p, out in zip(procs, outs, strict=True):
        assert p.returncode == 0, out[-3000:]
    return outs


def test_two_processes_equal_one_process_with_two_devices(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    address = f"127.0.0.1:{free_port()}"
    together = [
        train(
            tmp_path / "two",
            f"--coordinator_address={address}",
            "--num_processes=2",
            f"--process_id={i}",
            env=env,
        )
        for i in range(2)
    ]
    finish(together)
    one = dict(env, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    finish([train(tmp_path / "one", env=one)])

    assert_same_run(tmp_path / "one", tmp_path / "two")
    assert len(metric_lines(tmp_path / "two")) == 2
    # process 0 wrote the run's files, once
    assert (tmp_path / "two" / output.SUMMARY).exists()
    assert not list((tmp_path / "two").glob("*.partial"))
