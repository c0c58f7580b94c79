"""The throughput bench as a harness: what it trains, what it writes. Not its speed."""

import json
import os
import pathlib
import re
import subprocess
import sys

import jax
import numpy as np
import pytest

from bench import end_to_end, jax_bench, networks, report, throughput, torch_bench
from jaxdigits.models import port

ROOT = pathlib.Path(__file__).resolve().parents[1]
ROW_KEYS = {"network", "batch", "precision", "framework", "mode", "steps_per_call", "status"}
OK_KEYS = {"images_per_s", "min", "max", "spread", "samples", "first_call_s", "compile_s"}
ENV_KEYS = {"device", "platform", "jax_devices", "versions", "bf16_peak_tflops", "date", "cpu"}


def _leaves(tree):
    return [np.asarray(a) for a in jax.tree.leaves(tree)]


def test_every_mode_trains_the_torch_model_the_same_way():
    """Two steps of each JAX mode and of PyTorch eager (NCHW and channels_last), from the same
    weights on the same batches, end at the same params: the bench times identical work.
    The digit-sum CNN has no dropout, so the frameworks' random streams do not matter."""
    net = networks.NETWORKS["sum_cnn_regressor"]
    cfg = net.config()
    x, y = networks.batches(cfg, 4, 2)
    model, params, _ = net.models()
    reference = None
    for mode in jax_bench.MODES:
        run = jax_bench.build(mode, model, params, cfg, x, y)
        run()
        got = _leaves(run.params())
        reference = got if reference is None else reference
        for a, b in zip(got, reference, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=mode)
    for mode in ("eager", "eager_cl"):
        *_, torch_model = net.models()
        run = torch_bench.build(mode, torch_model, cfg, x, y)
        run()
        got = _leaves(getattr(port, net.port)(run.model.state_dict())["params"])
        # Adam divides by sqrt(v): where a gradient is ~0 float noise sets the update's sign,
        # so compare each layer's update as a whole (as test_digitsum_models does).
        for a, b, p in zip(got, reference, _leaves(params), strict=True):
            da, db = (a - p).ravel(), (b - p).ravel()
            cosine = da @ db / (np.linalg.norm(da) * np.linalg.norm(db))
            assert cosine > 0.999, (mode, cosine)
            np.testing.assert_allclose(np.linalg.norm(da), np.linalg.norm(db), rtol=1e-2)


def test_bf16_trains_float32_master_params():
    net = networks.NETWORKS["five_conv"]
    cfg = net.config()
    x, y = networks.batches(cfg, 2, 1)
    model, params, _ = net.models()
    run = jax_bench.build("step", model, params, cfg, x, y, precision="bf16")
    run()
    after = jax.tree.leaves(run.params())
    assert {a.dtype for a in after} == {np.dtype("float32")}
    assert any(not np.allclose(a, b) for a, b in zip(after, jax.tree.leaves(params), strict=True))


def test_quick_harness_writes_the_results_schema(tmp_path, capsys):
    argv = [
        "--networks=sum_cnn_regressor",
        "--batch-sizes=2",
        "--steps=1",
        "--repeats=2",
        "--precisions=f32,bf16",
        "--jax-modes=step,fused,dp_jit,dp_pmap",
        "--torch-modes=eager,eager_cl",
        "--end-to-end=none",
        f"--out={tmp_path}",
    ]
    throughput.main(argv)
    files = sorted(tmp_path.iterdir())
    assert [f.suffix for f in files] == [".json", ".md"]
    results = json.loads(files[0].read_text())
    assert results["schema"] == report.SCHEMA
    assert ENV_KEYS <= set(results["environment"])
    assert results["environment"]["platform"] == jax.devices()[0].platform
    assert results["environment"]["versions"]["jax"] == jax.__version__
    rows = results["throughput"]
    assert len(rows) == 2 * (4 + 2)  # precisions x (JAX + torch modes)
    for r in rows:
        assert ROW_KEYS <= set(r), r
        assert r["status"] == "ok", r
        assert OK_KEYS <= set(r), r
        assert len(r["samples"]) == 2 and r["min"] <= r["images_per_s"] <= r["max"]
        assert r["tflops"] > 0
    gflops = results["network_gflops_per_image"]["sum_cnn_regressor"]
    assert 0.1 < gflops < 1.0  # ~3x the 80 MFLOP forward pass, counted by XLA
    text = files[1].read_text()
    assert text == report.markdown(results)
    assert "| sum_cnn_regressor | 2 | bf16 |" in text
    assert text in capsys.readouterr().out


def test_two_devices_split_the_batch_or_say_why_not(tmp_path):
    """The script as a user runs it, on two host devices: the data-parallel modes run, and a
    batch that does not split over the devices is reported, not fatal. Later runs of the same
    day merge into the file."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    common = ["--networks=sum_cnn_regressor", "--steps=1", "--repeats=1", "--precisions=f32"]
    common += ["--torch-modes=eager", "--end-to-end=none", f"--out={tmp_path}"]
    common += ["--jax-modes=dp_jit"]
    for extra in (["--batch-sizes=2", "--jax-modes=dp_jit,dp_pmap"], ["--batch-sizes=3"]):
        cmd = [sys.executable, "bench/throughput.py", *common, *extra]
        subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, timeout=600)
    (path,) = tmp_path.glob("*.json")
    results = json.loads(path.read_text())
    assert results["environment"]["jax_devices"] == 2
    status = {(r["batch"], r["framework"], r["mode"]): r["status"] for r in results["throughput"]}
    assert status[(2, "jax", "dp_jit")] == status[(2, "jax", "dp_pmap")] == "ok"
    assert status[(3, "jax", "dp_jit")] == "unavailable"
    assert status[(2, "torch", "eager")] == status[(3, "torch", "eager")] == "ok"
    assert "batch 3 does not split over 2 devices" in path.with_suffix(".md").read_text()


def _results(network, device="A"):
    row = {"network": network, "batch": 2, "precision": "f32", "framework": "jax"}
    return {
        "schema": report.SCHEMA,
        "environment": {"device": device},
        "network_gflops_per_image": {network: 1.0},
        "throughput": [{**row, "mode": "step"}],
        "end_to_end": [],
    }


def test_merge_keeps_the_other_networks_and_refuses_another_device(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(_results("five_conv")))
    merged = report.merge(report.previous(path, "A"), _results("vgg_regressor"))
    assert sorted(merged["network_gflops_per_image"]) == ["five_conv", "vgg_regressor"]
    assert sorted(r["network"] for r in merged["throughput"]) == ["five_conv", "vgg_regressor"]
    with pytest.raises(ValueError, match="r.json: another device"):
        report.previous(path, "B")


def test_an_unusable_out_stops_the_bench_before_it_runs(tmp_path, capsys):
    """--out that is a file, or a results file of that day that is not JSON: one line naming
    it, before any timing, and the file is left as it was."""
    taken = tmp_path / "taken"
    taken.write_text("mine")
    argv = ["--networks=sum_cnn_regressor", "--end-to-end=none"]
    with pytest.raises(SystemExit, match=f"^error: .*{taken.name}"):
        throughput.main([*argv, f"--out={taken}"])
    path = report.results_path(tmp_path, report.environment(), quick=False)
    path.write_text("{half a fi")
    with pytest.raises(SystemExit, match=f"^error: {re.escape(str(path))}: not a readable"):
        throughput.main([*argv, f"--out={tmp_path}"])
    assert path.read_text() == "{half a fi" and taken.read_text() == "mine"
    assert "images/s" not in capsys.readouterr().out


@pytest.mark.parametrize("bad", ["--batch-sizes=0", "--networks=resnet", "--jax-modes=vmap"])
def test_bad_arguments_exit_with_usage(bad, capsys):
    with pytest.raises(SystemExit):
        throughput.parse_args([bad])
    assert "error" in capsys.readouterr().err


def test_end_to_end_records_both_frameworks():
    """Both recipes of the digit-sum run, shrunk: same epochs and batch, a real accuracy."""
    records = [end_to_end.run_jax("digitsum_regressor", True)]
    records.append(end_to_end.run_torch("digitsum_regressor", True))
    for r in records:
        assert (r["epochs"], r["batch_size"]) == (1, 64)
        assert 0.0 <= r["test_accuracy"] <= 1.0
        assert r["wall_s"] >= r["steady_s"] > 0
    assert records[0]["compile_s"] > 0 and records[1]["compile_s"] == 0
