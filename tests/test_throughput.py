"""The throughput bench as a harness (bench/throughput.py): what its modes train
(bench/jax_bench.py, bench/torch_bench.py), what it times and writes. Not its speed.

Its whole runs: test_end_to_end.py; its results files as markdown: test_results_markdown.py.
"""

import dataclasses
import json
import os
import pathlib
import re
import subprocess
import sys

import jax
import numpy as np
import pytest

from bench import end_to_end, jax_bench, networks, results_markdown, throughput, torch_bench
from jaxdigits.models import port

ROOT = pathlib.Path(__file__).resolve().parents[1]
ROW_KEYS = {"network", "batch", "precision", "framework", "mode", "steps_per_call", "status"}
OK_KEYS = {"images_per_s", "min", "max", "spread", "samples", "first_call_s", "compile_s"}
ENV_KEYS = {"device", "platform", "jax_devices", "versions", "peak_tflops", "tf32", "date", "cpu"}


def _leaves(tree):
    return [np.asarray(a) for a in jax.tree.leaves(tree)]


def _assert_same_updates(got, reference, start, label, min_cosine=0.999, rtol=1e-2):
    """Adam divides by sqrt(v): where a gradient is ~0 float noise sets the update's sign,
    so compare each layer's update as a whole (as test_digitsum_models does)."""
    for a, b, p in zip(got, reference, start, strict=True):
        da, db = (a - p).ravel().astype(np.float64), (b - p).ravel().astype(np.float64)
        cosine = da @ db / (np.linalg.norm(da) * np.linalg.norm(db))
        assert cosine > min_cosine, (label, cosine)
        np.testing.assert_allclose(np.linalg.norm(da), np.linalg.norm(db), rtol=rtol)


@pytest.mark.slow
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
        # Each mode is its own XLA program, summing in its own order: on an AVX2 AMD EPYC
        # dp_pmap's params after two steps differed from step's in 6 of 6.9 M elements (by
        # 2.5e-6, a gradient near Adam's eps); a layer's update as a whole agrees to ~1e-12.
        _assert_same_updates(got, reference, _leaves(params), mode, 1 - 1e-9, rtol=1e-5)
    for mode in ("eager", "eager_cl"):
        *_, torch_model = net.models()
        run = torch_bench.build(mode, torch_model, cfg, x, y)
        run()
        got = _leaves(getattr(port, net.port)(run.model.state_dict())["params"])
        _assert_same_updates(got, reference, _leaves(params), mode)


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


@pytest.mark.slow
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
    assert results["schema"] == results_markdown.SCHEMA
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
    assert text == results_markdown.markdown(results)
    assert "| sum_cnn_regressor | 2 | bf16 |" in text
    assert text in capsys.readouterr().out


@pytest.mark.slow
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


def test_an_unusable_out_stops_the_bench_before_it_runs(tmp_path, capsys):
    """--out that is a file, or a results file of that day that is not JSON: one line naming
    it, before any timing, and the file is left as it was."""
    taken = tmp_path / "taken"
    taken.write_text("mine")
    argv = ["--networks=sum_cnn_regressor", "--end-to-end=none"]
    with pytest.raises(SystemExit, match=f"^error: .*{taken.name}"):
        throughput.main([*argv, f"--out={taken}"])
    path = results_markdown.results_path(tmp_path, results_markdown.environment(), quick=False)
    path.write_text("{half a fi")
    with pytest.raises(SystemExit, match=f"^error: {re.escape(str(path))}: not a readable"):
        throughput.main([*argv, f"--out={tmp_path}"])
    assert path.read_text() == "{half a fi" and taken.read_text() == "mine"
    assert "images/s" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "bad",
    [
        "--batch-sizes=0",
        "--networks=resnet",
        "--networks=none,five_conv",
        "--jax-modes=vmap",
        "--torch-modes=jit",
        "--end-to-end-epochs=0",
        "--end-to-end-runs=part9",
        "--vgg-head=32",
        "--vgg-head=32,0",
    ],
)
def test_bad_arguments_exit_with_usage(bad, capsys):
    with pytest.raises(SystemExit):
        throughput.parse_args([bad])
    assert "error" in capsys.readouterr().err


@pytest.mark.slow
def test_a_vgg_head_change_reaches_both_frameworks():
    """--vgg-head (the GPU check's dry run): both models get the head, with the same weights."""
    assert throughput.parse_args(["--vgg-head", "32,8"]).vgg_head == (32, 8)
    net = dataclasses.replace(networks.NETWORKS["vgg_regressor"], changes=(("vgg_head", (32, 8)),))
    model, params, torch_model = net.models()
    assert params["fc1"]["kernel"].shape == (512 * 7 * 7, 32)
    assert params["fc2"]["kernel"].shape == (32, 8) and params["fc3"]["kernel"].shape == (8, 1)
    assert [m.out_features for m in torch_model.head if hasattr(m, "out_features")] == [32, 8, 1]
    x, _ = networks.batches(net.config(), 2, 1)
    torch_model.eval()
    with torch_bench.torch.no_grad():
        expected = torch_model(torch_bench.torch.from_numpy(x[0]).permute(0, 3, 1, 2)).numpy()
    got = jax.jit(model.apply)({"params": params}, x[0])
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_compile_mode_trains_as_eager_and_fails_on_a_recompile():
    """torch.compile (the only compile of this file but one, the smallest network and batch):
    two steps end where eager's end; a second call compiles nothing; a call that would
    recompile (another batch shape) fails with dynamo's reason instead of being timed."""
    net = networks.NETWORKS["sum_cnn_regressor"]
    cfg = net.config()
    x, y = networks.batches(cfg, 2, 2)
    *_, torch_model = net.models()
    start = _leaves(getattr(port, net.port)(torch_model.state_dict())["params"])
    trained = {}
    torch_bench.reset_compiler()
    for mode in ("eager", "compile"):
        *_, torch_model = net.models()
        run = torch_bench.build(mode, torch_model, cfg, x, y)
        run()  # the build, for compile
        trained[mode] = _leaves(getattr(port, net.port)(run.model.state_dict())["params"])
    _assert_same_updates(trained["compile"], trained["eager"], start, "compile")
    run()  # no recompile, no fallback: it would raise
    xs, ys = run.batches
    xs[1], ys[1] = xs[1][:1], ys[1][:1]
    with pytest.raises(torch_bench.CompileFailed, match="recompiled in call 3.*size mismatch"):
        run()


def test_compile_mode_that_runs_eagerly_is_a_failure(monkeypatch):
    """torch.compile that hands back the step as it was (what dynamo does when it gives up):
    the first call compiles no graph, and the mode says so."""
    import torch

    monkeypatch.setattr(torch, "compile", lambda fn, **_: fn)
    net = networks.NETWORKS["sum_cnn_regressor"]
    cfg = net.config()
    x, y = networks.batches(cfg, 2, 1)
    *_, torch_model = net.models()
    run = torch_bench.build("compile", torch_model, cfg, x, y)
    with pytest.raises(torch_bench.CompileFailed, match="compiled no graph"):
        run()


@pytest.mark.slow
def test_the_harness_times_compile_and_says_why_cuda_graphs_cannot_run(tmp_path):
    """The bench's own path for the compiled modes (the same graph as the test above, so
    inductor's cache mostly serves it): compile is timed, compile_graphs without CUDA is a
    row marked unavailable with its reason, and the ratios compare like with like."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available: compile_graphs runs here")
    argv = ["--networks=sum_cnn_regressor", "--batch-sizes=2", "--steps=2", "--repeats=1"]
    argv += ["--precisions=f32", "--jax-modes=step,fused", "--end-to-end=none"]
    argv += ["--torch-modes=eager,compile,compile_graphs", f"--out={tmp_path}"]
    results = throughput.main(argv)
    rows = {r["mode"]: r for r in results["throughput"] if r["framework"] == "torch"}
    assert rows["eager"]["status"] == rows["compile"]["status"] == "ok"
    assert rows["compile_graphs"]["status"] == "unavailable"
    reason = "CUDA graphs need a CUDA device, and torch sees none"
    assert rows["compile_graphs"]["reason"] == reason
    assert "images_per_s" not in rows["compile_graphs"]
    text = results_markdown.markdown(results)
    assert f"sum_cnn_regressor batch 2 f32 torch compile_graphs: unavailable: {reason}" in text
    jax_rows = {r["mode"]: r for r in results["throughput"] if r["framework"] == "jax"}
    step = jax_rows["step"]["images_per_s"] / rows["eager"]["images_per_s"]
    fused = jax_rows["fused"]["images_per_s"] / rows["compile"]["images_per_s"]
    assert f" | {step:.2f}x | {fused:.2f}x | " in text


@pytest.mark.slow
def test_a_mode_that_fails_while_timed_is_reported_not_timed(tmp_path, monkeypatch):
    """A run that raises during the timed repeats (a compiled mode that recompiles, say) ends
    as a failed row with its reason; the other modes are still timed."""
    real_build = torch_bench.build

    def build(mode, *args, **kwargs):
        run = real_build(mode, *args, **kwargs)
        calls = []

        def flaky():
            calls.append(1)
            if mode == "eager_cl" and len(calls) == 3:
                raise torch_bench.CompileFailed("recompiled in call 3, after its build: test")
            run()

        return flaky

    monkeypatch.setattr(torch_bench, "build", build)
    argv = ["--networks=sum_cnn_regressor", "--batch-sizes=2", "--steps=1", "--repeats=2"]
    argv += ["--precisions=f32", "--jax-modes=step", "--torch-modes=eager,eager_cl"]
    results = throughput.main([*argv, "--end-to-end=none", f"--out={tmp_path}"])
    rows = {r["mode"]: r for r in results["throughput"]}
    assert rows["step"]["status"] == rows["eager"]["status"] == "ok"
    assert len(rows["eager"]["samples"]) == 2
    failed = rows["eager_cl"]
    assert failed["status"] == "failed" and "images_per_s" not in failed
    assert failed["reason"] == "CompileFailed: recompiled in call 3, after its build: test"
    assert "eager_cl: failed: CompileFailed: recompiled in call 3" in results_markdown.markdown(
        results
    )


def test_cuda_graphs_are_unavailable_without_cuda():
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available")
    net = networks.NETWORKS["sum_cnn_regressor"]
    cfg = net.config()
    x, y = networks.batches(cfg, 2, 1)
    with pytest.raises(torch_bench.Unavailable, match="need a CUDA device"):
        torch_bench.build("compile_graphs", net.models()[2], cfg, x, y)
    assert torch_bench.configure() == {}  # no CUDA settings to record


def test_flags_for_the_cache_and_end_to_end_only_runs(tmp_path, monkeypatch):
    """--compilation-cache goes to compile_cache.setup first thing and into the settings;
    --networks none times nothing (only end-to-end runs, here none)."""
    calls = []

    def setup(path):
        calls.append(path)
        return pathlib.Path("/cache/dir") if path != "off" else None

    monkeypatch.setattr(throughput.compile_cache, "setup", setup)
    monkeypatch.setattr(
        throughput.results_markdown, "environment", lambda: calls.append("env") or ENV
    )
    argv = ["--networks=none", "--end-to-end=none", "--end-to-end-epochs=1", f"--out={tmp_path}"]
    results = throughput.main([*argv, "--compilation-cache=/cache/dir"])
    assert calls == ["/cache/dir", "env"]
    settings = results["settings"]
    assert settings["compilation_cache"] == "/cache/dir" and settings["end_to_end_epochs"] == 1
    assert results["throughput"] == [] and "| network |" not in results_markdown.markdown(results)
    assert (
        throughput.main([*argv, "--compilation-cache=off"])["settings"]["compilation_cache"] is None
    )
    args = throughput.parse_args([])
    assert args.compilation_cache is None and args.end_to_end_runs == tuple(end_to_end.RUNS)
    assert set(throughput.FULL["torch_modes"]) == set(torch_bench.MODES)
    assert throughput.QUICK["torch_modes"] == ("eager", "eager_cl")


ENV = {
    "device": "cpu-test",
    "platform": "cpu",
    "jax_devices": 1,
    "torch_device": "cpu",
    "cuda": None,
    "driver": None,
    "versions": {"jax": "0", "flax": "0", "torch": "0"},
    "tf32": False,
    "peak_tflops": {"f32": None, "bf16": None},
    "date": "2000-01-01",
}
