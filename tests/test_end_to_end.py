"""bench/end_to_end.py: whole runs of both frameworks, what their records say. Not their speed.

The runs are the bench's toy ones, quick runs with their data shrunk to a few steps (a quick
run is mostly fixed costs and compilation, which these keep): the tests check what a run records,
and the digit-sum runs, three whole runs, are made once for the module.
"""

import sys

import jax
import pytest
from helpers_data import NEEDS_MNIST

from bench import end_to_end, results_markdown


@pytest.fixture(scope="module")
def digitsum(tmp_path_factory):
    """The toy digit-sum run (end_to_end.TOY): JAX's run twice, first with an empty persistent
    compilation cache and nothing reused from memory (earlier tests), so every program is
    compiled ("cold"), then with the in-memory executables gone again, so it reads them back
    from the disk ("warm"); then torch's run."""
    from jax.experimental.compilation_cache import compilation_cache

    from jaxdigits.runtime import compile_cache

    previous = jax.config.jax_compilation_cache_dir
    try:
        compile_cache.setup(str(tmp_path_factory.mktemp("cache")))
        jax.clear_caches()
        cold = end_to_end.run_jax("digitsum_regressor", True, toy=True)
        compilation_cache.reset_cache()
        jax.clear_caches()
        warm = end_to_end.run_jax("digitsum_regressor", True, toy=True)
    finally:
        compile_cache.setup(previous or "off")
    torch = end_to_end.run_torch("digitsum_regressor", True, toy=True)
    return {"cold": cold, "warm": warm, "torch": torch}


@pytest.mark.slow
@NEEDS_MNIST
def test_end_to_end_records_both_frameworks(digitsum):
    """Both recipes of the digit-sum run: same epochs and batch, a real accuracy."""
    records = [digitsum["cold"], digitsum["torch"]]
    assert [r["recipe"] for r in records] == ["trainer", "loop"]  # its original had no Lightning
    for r in [*records, digitsum["warm"]]:
        assert (r["run"], r["epochs"], r["batch_size"]) == ("digitsum_regressor", 1, 64)
        assert 0.0 <= r["test_accuracy"] <= 1.0
        assert r["wall_s"] >= r["steady_s"] > 0
    assert records[0]["compile_s"] > 0 and records[1]["compile_s"] == 0
    assert [r["framework"] for r in records] == ["jax", "torch"]


@pytest.mark.slow
@NEEDS_MNIST
def test_end_to_end_counts_the_compilation_cache(digitsum):
    """A JAX run says whether its programs were compiled (cold) or read from the persistent
    cache (warm); both rows stay in a results file."""
    cold, warm = digitsum["cold"], digitsum["warm"]
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
@NEEDS_MNIST
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
    r = end_to_end.run_torch("part3", True, epochs=2, toy=True)
    assert fits == [2]
    assert (r["recipe"], r["epochs"], r["batch_size"]) == ("lightning", 2, 32)
    assert 0.0 <= r["test_accuracy"] <= 1.0
    assert r["wall_s"] == r["steady_s"] > 0


def test_without_lightning_part3_falls_back_to_the_loop(monkeypatch):
    monkeypatch.setitem(sys.modules, "pytorch_lightning", None)  # import fails
    assert end_to_end.recipe("part3") == "loop"
    assert end_to_end.recipe("digitsum_regressor") == "loop"
