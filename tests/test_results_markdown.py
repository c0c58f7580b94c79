"""bench/results_markdown.py: results files merged and rendered as markdown, the repo's own
included."""

import json
import pathlib

import pytest

from bench import results_markdown

ROOT = pathlib.Path(__file__).resolve().parents[1]


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
