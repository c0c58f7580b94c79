"""bench/compare.py: two results files of the bench, side by side."""

import json

from bench import compare, results_markdown


def _run(rates: dict, date: str) -> dict:
    """A results file with the images/s of each (network, framework, mode) at batch 32."""
    env = {"device": "cpu", "date": date, "versions": {"jax": "0", "torch": "0"}}
    rows = [
        {"network": n, "batch": 32, "precision": "f32", "framework": fw, "mode": m}
        | ({"images_per_s": v} if v else {"status": "failed", "reason": "x"})
        for (n, fw, m), v in rates.items()
    ]
    return {
        "schema": results_markdown.SCHEMA,
        "environment": env,
        "throughput": rows,
        "end_to_end": [],
    }


BEFORE = {
    ("five_conv", "jax", "step"): 100.0,
    ("five_conv", "jax", "fused"): 120.0,
    ("five_conv", "torch", "eager"): 200.0,
    ("five_conv", "torch", "eager_cl"): 150.0,
    ("five_conv", "torch", "compile"): 400.0,  # not an eager mode: not compared
    ("vgg_regressor", "jax", "step"): 10.0,  # only in one file: left out
}
AFTER = {
    ("five_conv", "jax", "step"): 300.0,
    ("five_conv", "jax", "fused"): None,  # failed in this run
    ("five_conv", "torch", "eager"): 150.0,
    ("five_conv", "torch", "eager_cl"): 250.0,
}


def test_ratios_within_each_run_and_the_change_of_jax(tmp_path, capsys):
    paths = []
    for name, rates, date in (("b", BEFORE, "2026-01-01"), ("a", AFTER, "2026-01-02")):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(_run(rates, date)))
    out = tmp_path / "cmp.md"
    assert compare.main([*map(str, paths), f"--out={out}"]) == 0
    text = out.read_text()
    assert text == capsys.readouterr().out
    # before: best JAX 120 (fused) / best eager 200; after: 300 (step) / 250 (eager_cl)
    assert "| five_conv | 32 | f32 | 120 | 200 | 0.60x | 300 | 250 | 1.20x | 2.50x |" in text
    assert "vgg_regressor" not in text
    assert "- before: cpu, 2026-01-01" in text and "- after: cpu, 2026-01-02" in text


def test_a_file_that_is_not_results_is_named(tmp_path, capsys):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(_run(BEFORE, "d")))
    bad.write_text('{"rows": []}')
    assert compare.main([str(good), str(bad)]) == 2
    assert "bad.json: not a bench/throughput.py results file" in capsys.readouterr().err
    assert compare.main([str(good), str(tmp_path / "missing.json")]) == 2
    assert "missing.json: not a readable results file" in capsys.readouterr().err
