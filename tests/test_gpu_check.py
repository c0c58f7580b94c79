"""bench/gpu_check.sh: the GPU check as one command. On the CPU: its dry run at toy sizes,
and its refusal to write "GPU" results on a CPU."""

import csv
import json
import os
import pathlib
import subprocess

import jax
import pytest
from helpers_data import NEEDS_MNIST

from jaxdigits.runtime import compile_cache

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_check.sh"
pytestmark = [pytest.mark.slow, NEEDS_MNIST]


def _run(*args, timeout, cwd=ROOT):
    # Its own time budget (about 3 minutes for a dry run) is lifted: a slow or busy machine
    # would skip steps; how long it takes is measured, not tested. Its programs go to the
    # suite's compilation cache, where the bench tests' toy programs are, not to a cold one.
    cache = compile_cache.resolve()
    env = dict(
        os.environ,
        GPU_CHECK_SECONDS=str(timeout),
        JAXDIGITS_COMPILATION_CACHE=str(cache) if cache else "off",
    )
    return subprocess.run(
        ["bash", str(SCRIPT), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout + 60,
        env=env,
    )


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="on a GPU the check runs for real")
def test_on_a_cpu_without_dry_run_it_fails_before_measuring(tmp_path):
    result = _run(tmp_path, timeout=120)
    assert result.returncode == 1, result.stdout[-2000:]
    assert "error: JAX runs on 'cpu', not 'gpu'" in result.stdout
    assert json.loads((tmp_path / "environment.json").read_text())["jax_backend"] == "cpu"
    assert not list(tmp_path.glob("*-*.json")) and not list(tmp_path.glob("*.md"))


def test_dry_run_runs_every_step_at_toy_sizes(tmp_path):
    result = _run("--dry-run", "out", timeout=600, cwd=tmp_path)  # relative to the caller
    out = tmp_path / "out"
    assert result.returncode == 0, result.stdout[-3000:]
    with open(out / "steps.tsv") as f:
        steps = {row["step"]: row["exit"] for row in csv.DictReader(f, delimiter="\t")}
    networks = ("five_conv", "sum_cnn_regressor", "sum_cnn_classifier", "vgg_regressor")
    expected = {"environment", "parity", "smoke", "end-to-end"}
    expected |= {f"throughput-{n}" for n in networks} | {"compiled-sum_cnn_regressor"}
    assert set(steps) == expected and set(steps.values()) == {"0"}, steps
    assert json.loads((out / "smoke.json").read_text())["agree"] is True
    [results] = [p for p in out.glob("*.json") if p.name not in ("smoke.json", "environment.json")]
    data = json.loads(results.read_text())
    rows = data["throughput"]
    assert data["settings"]["vgg_head"] == [32, 8]  # the toy head, recorded with the figures
    assert {r["network"] for r in rows} == set(networks)
    assert {(r["precision"]) for r in rows} == {"f32", "bf16"}
    timed = {(r["framework"], r["mode"]) for r in rows if r.get("images_per_s")}
    assert {("jax", "step"), ("jax", "fused"), ("torch", "eager"), ("torch", "compile")} <= timed
    assert {(r["run"], r["framework"]) for r in data["end_to_end"]} == {
        ("part3", "jax"),
        ("part3", "torch"),
    }
    assert results.with_suffix(".md").is_file()
    assert len(list(out.iterdir())) <= 8  # a handful of files: the results only
