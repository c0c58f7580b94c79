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

from bench import end_to_end, jax_bench, networks, results_markdown, throughput, torch_bench
from jaxdigits.models import port

ROOT = pathlib.Path(__file__).resolve().parents[1]
ROW_KEYS = {"network", "batch", "precision", "framework", "mode", "steps_per_call", "status"}
OK_KEYS = {"images_per_s", "min", "max", "spread", "samples", "first_call_s", "compile_s"}
ENV_KEYS = {"device", "platform", "jax_devices", "versions", "peak_tflops", "tf32", "date", "cpu"}


def _leaves(tree):
    return [np.asarray(a) for a in jax.tree.leaves(tree)]


def _assert_same_updates(got, reference, start, label):
    """Adam divides by sqrt(v): where a gradient is ~0 float noise sets the update's sign,
    so compare each layer's update as a whole (as test_digitsum_models does)."""
    for a, b, p in zip(got, reference, start, strict=True):
        da, db = (a - p).ravel(), (b - p).ravel()
        cosine = da @ db / (np.linalg.norm(da) * np.linalg.norm(db))
        assert cosine > 0.999, (label, cosine)
        np.testing.assert_allclose(np.linalg.norm(da), np.linalg.norm(db), rtol=1e-2)


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
        for a, b in zip(got, reference, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=mode)
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


def _results(network, device="A"):
    row = {"network": network, "batch": 2, "precision": "f32", "framework": "jax"}
    return {
        "schema": results_markdown.SCHEMA,
        "environment": {"device": device},
        "network_gflops_per_image": {network: 1.0},
        "throughput": [{**row, "mode": "step"}],
        "end_to_end": [],
    }


def test_merge_keeps_the_other_networks_and_refuses_another_device(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(_results("five_conv")))
    merged = results_markdown.merge(results_markdown.previous(path, "A"), _results("vgg_regressor"))
    assert sorted(merged["network_gflops_per_image"]) == ["five_conv", "vgg_regressor"]
    assert sorted(r["network"] for r in merged["throughput"]) == ["five_conv", "vgg_regressor"]
    with pytest.raises(ValueError, match="r.json: another device"):
        results_markdown.previous(path, "B")


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
    ],
)
def test_bad_arguments_exit_with_usage(bad, capsys):
    with pytest.raises(SystemExit):
        throughput.parse_args([bad])
    assert "error" in capsys.readouterr().err


@pytest.mark.slow
def test_end_to_end_records_both_frameworks():
    """Both recipes of the digit-sum run, shrunk: same epochs and batch, a real accuracy."""
    records = [end_to_end.run_jax("digitsum_regressor", True)]
    records.append(end_to_end.run_torch("digitsum_regressor", True))
    assert [r["recipe"] for r in records] == ["trainer", "loop"]  # its original had no Lightning
    for r in records:
        assert (r["epochs"], r["batch_size"]) == (1, 64)
        assert 0.0 <= r["test_accuracy"] <= 1.0
        assert r["wall_s"] >= r["steady_s"] > 0
    assert records[0]["compile_s"] > 0 and records[1]["compile_s"] == 0


@pytest.mark.slow
def test_end_to_end_counts_the_compilation_cache(tmp_path):
    """A JAX run says whether its programs were compiled (cold) or read from the persistent
    cache (warm); both rows stay in a results file."""
    from jax.experimental.compilation_cache import compilation_cache

    from jaxdigits.runtime import compile_cache

    previous = jax.config.jax_compilation_cache_dir
    try:
        compile_cache.setup(str(tmp_path / "cache"))  # empty: every program is compiled
        jax.clear_caches()  # and none is reused from memory (earlier tests), unwritten
        cold = end_to_end.run_jax("digitsum_regressor", True)
        compilation_cache.reset_cache()
        jax.clear_caches()  # in-memory executables gone: the second run reads the disk
        warm = end_to_end.run_jax("digitsum_regressor", True)
    finally:
        compile_cache.setup(previous or "off")
    assert cold["cache"] == "cold" and cold["cache_misses"] > 0
    assert warm["cache"] == "warm" and warm["cache_hits"] > 0 and warm["cache_misses"] == 0
    assert warm["compile_s"] < cold["compile_s"]
    rows = [dict(r, quick=True) for r in (cold, warm)]
    merged = results_markdown.merge(
        {"throughput": [], "end_to_end": rows[:1], "network_gflops_per_image": {}},
        {"throughput": [], "end_to_end": rows[1:], "network_gflops_per_image": {}},
    )
    assert [r["cache"] for r in merged["end_to_end"]] == ["cold", "warm"]


@pytest.mark.slow
def test_end_to_end_lightning_recipe_trains_part3(monkeypatch):
    """Part III's torch run goes through pl.Trainer where Lightning is installed, for exactly
    the epochs asked (patience 0: no early stopping), and says so in its record."""
    pl = pytest.importorskip("pytorch_lightning", reason="pytorch_lightning is not installed")
    fits = []
    real_fit = pl.Trainer.fit

    def fit(trainer, *args, **kwargs):
        fits.append(trainer.max_epochs)
        return real_fit(trainer, *args, **kwargs)

    monkeypatch.setattr(pl.Trainer, "fit", fit)
    real_config = end_to_end.config

    def tiny(run, quick, epochs=None):
        cfg = real_config(run, quick, epochs)
        cfg.data.limit, cfg.data.test_limit = 256, 128
        return cfg

    monkeypatch.setattr(end_to_end, "config", tiny)
    r = end_to_end.run_torch("part3", True, epochs=2)
    assert fits == [2]
    assert (r["recipe"], r["epochs"], r["batch_size"]) == ("lightning", 2, 32)
    assert 0.0 <= r["test_accuracy"] <= 1.0
    assert r["wall_s"] == r["steady_s"] > 0


def test_without_lightning_part3_falls_back_to_the_loop(monkeypatch):
    monkeypatch.setitem(sys.modules, "pytorch_lightning", None)  # import fails
    assert end_to_end.recipe("part3") == "loop"
    assert end_to_end.recipe("digitsum_regressor") == "loop"


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


def _grid(env: dict) -> dict:
    """A results file of one network and batch at both precisions: images/s by mode."""
    rates = {
        ("jax", "step"): 100.0,
        ("jax", "fused"): 300.0,
        ("torch", "eager"): 50.0,
        ("torch", "eager_cl"): 80.0,
        ("torch", "compile"): 200.0,
        ("torch", "compile_graphs"): 150.0,
    }
    rows = []
    for precision, tflops in (("f32", 49.47), ("bf16", 49.47)):
        for (fw, mode), rate in rates.items():
            row = {"network": "five_conv", "batch": 32, "precision": precision}
            row.update(framework=fw, mode=mode, status="ok", images_per_s=rate)
            if fw == "jax":
                row["tflops"] = tflops * rate / 300.0
            rows.append(row)
    versions = {"jax": "0", "flax": "0", "torch": "0"}
    env = {"device": "D", "date": "d", "jax_devices": 1, "versions": versions, **env}
    return {
        "schema": results_markdown.SCHEMA,
        "environment": env,
        "throughput": rows,
        "end_to_end": [],
    }


def _row(text, precision):
    (line,) = [ln for ln in text.splitlines() if ln.startswith(f"| five_conv | 32 | {precision} |")]
    return line


def test_markdown_ratios_and_peaks_per_precision_on_a_gpu():
    """JAX step against the best torch eager mode, JAX fused against the best compiled one;
    float32 says TF32 and is measured against the TF32 peak, bf16 against the bf16 peak."""
    env = {"platform": "gpu", "cuda": "13.0", "driver": "600.1", "tf32": True}
    env["peak_tflops"] = {"f32": 494.7, "bf16": 989.4}
    text = results_markdown.markdown(_grid(env))
    head = "| JAX step / torch eager | JAX fused / torch compiled | JAX TFLOP/s | % of peak |"
    assert head in text
    # 100 / max(50, 80); 300 / max(200, 150); the best JAX (fused) 49.47 TFLOP/s
    cells = "| 100 | 300 |  |  | 50 | 80 | 200 | 150 | 1.25x | 1.50x | 49.47 |"
    assert _row(text, "f32 (TF32 matmuls)").endswith(f"{cells} 10.0 |")  # of 494.7
    assert _row(text, "bf16").endswith(f"{cells} 5.0 |")  # of 989.4
    assert "run in TF32 in both frameworks" in text


def test_markdown_on_a_cpu_and_from_a_file_before_the_per_precision_peaks():
    text = results_markdown.markdown(_grid({"platform": "cpu", "tf32": False, "cuda": "13.0"}))
    assert "TF32 matmuls" not in text and "in both frameworks" not in text  # plain float32
    assert _row(text, "f32").endswith("| 1.25x | 1.50x | 49.47 | — |")
    assert _row(text, "bf16").endswith("| 1.25x | 1.50x | 49.47 | — |")
    # An older file knew one peak, bf16's: its float32 rows get none rather than that one.
    text = results_markdown.markdown(
        _grid({"platform": "gpu", "cuda": "12", "driver": "1", "bf16_peak_tflops": 989.4})
    )
    assert _row(text, "f32").endswith("| 49.47 | — |")
    assert _row(text, "bf16").endswith("| 49.47 | 5.0 |")


def test_the_results_files_in_the_repo_still_render():
    """Every throughput file under bench/results (written before these columns, peaks and
    recipes) renders a row per setting; compare.py reads them too."""
    files = [f for f in sorted((ROOT / "bench" / "results").glob("*.json"))]
    rendered = 0
    for f in files:
        results = json.loads(f.read_text())
        if "throughput" not in results:  # bench/check_memory_estimate.py's
            continue
        text = results_markdown.markdown(results)
        for net, batch, precision in results_markdown.by_setting(results):
            assert f"| {net} | {batch} | {precision} |" in text, f.name
        for r in results["end_to_end"]:  # files written before recipes were recorded
            recipe = r.get("recipe") or ("loop" if r["framework"] == "torch" else "trainer")
            assert f"| {r['run']} | {r['framework']} | {recipe} | {r['epochs']} |" in text
        rendered += 1
    assert rendered >= 4


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
