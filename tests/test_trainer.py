"""End-to-end smoke runs: resume, evaluate, several seeds, config errors."""

import json
import pathlib
import shutil

import jax
import numpy as np
import pytest
from helpers_data import NEEDS_MNIST

from jaxdigits import checkpoint, defaults, evaluate, output, saved_params, trainer

ROOT = pathlib.Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, NEEDS_MNIST]


def load_config(name, arg="smoke", **overrides):
    config = defaults.from_file(ROOT / "configs" / f"{name}.py", arg)
    config.patience = 5  # keep every epoch of these short runs
    # The plumbing is what is tested: 180 train images, 5 steps of 32 an epoch in one call
    # (the CPU's default call of 10 would compute 5 padding steps), 100 test images.
    config.data.limit, config.data.test_limit, config.steps_per_call = 200, 100, 5
    config.update(overrides)
    return config


def params_of(workdir):
    return saved_params.restore_best(workdir)["best_params"]


@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory):
    """An uninterrupted 2-epoch smoke run of Part 3."""
    workdir = tmp_path_factory.mktemp("uninterrupted")
    summary = trainer.train_and_evaluate(load_config("part3", num_epochs=2), workdir)
    return workdir, summary


def test_summary_and_outputs(two_epochs):
    workdir, summary = two_epochs
    stored = json.loads((workdir / output.SUMMARY).read_text())
    assert stored == summary
    assert set(output.SUMMARY_KEYS) <= set(stored)
    assert 0.0 <= stored["test_accuracy"] <= 1.0 and stored["epochs"] == 2
    lines = output.read_metrics(workdir)
    assert [r["epoch"] for r in lines] == [1, 2]
    assert (workdir / output.CONFUSION).stat().st_size > 0


def test_resume_gives_the_uninterrupted_result(two_epochs, tmp_path):
    reference, _ = two_epochs
    trainer.train_and_evaluate(load_config("part3", num_epochs=1), tmp_path)  # "interrupted"
    summary = trainer.train_and_evaluate(load_config("part3", num_epochs=2), tmp_path)
    assert [r["epoch"] for r in output.read_metrics(tmp_path)] == [1, 2]
    state_a = checkpoint.RunCheckpoints(reference)
    state_b = checkpoint.RunCheckpoints(tmp_path)
    assert state_a.latest_epoch() == state_b.latest_epoch() == 2
    for a, b in zip(
        jax.tree.leaves(params_of(reference)), jax.tree.leaves(params_of(tmp_path)), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    assert summary == json.loads((reference / output.SUMMARY).read_text()) | {
        "train_seconds": summary["train_seconds"]
    }


def test_evaluate_reproduces_summary(two_epochs):
    workdir, summary = two_epochs
    result = evaluate.evaluate(workdir)
    for key in ("test_accuracy", "test_accuracy_best"):
        assert result[key] == [summary[key]]
        assert result["stored"][key] == [summary[key]]


def test_a_run_older_than_new_config_keys_evaluates_and_resumes(two_epochs, tmp_path):
    """A config.json written before keys were added to the defaults reads them as defaults."""
    source, summary = two_epochs
    old = tmp_path / "old"
    shutil.copytree(source, old)
    saved = json.loads((old / output.CONFIG).read_text())
    for key in ("task", "seed_axis", "eval_train_split", "original"):
        del saved[key]
    (old / output.CONFIG).write_text(json.dumps(saved))
    assert evaluate.evaluate(old)["test_accuracy"] == [summary["test_accuracy"]]
    resumed = trainer.train_and_evaluate(load_config("part3", num_epochs=2), old)
    assert resumed["test_accuracy"] == summary["test_accuracy"]  # nothing left to train


def test_a_finished_run_re_tests_with_other_decodes(two_epochs, tmp_path):
    """Only how the test predictions are read changes: nothing trains, the old figures stay
    and the new decode's accuracies join them."""
    source, summary = two_epochs
    shutil.copytree(source, tmp_path / "run")
    before = output.read_metrics(tmp_path / "run")
    config = load_config("part3", num_epochs=2, decodes=("argmax", "argmin", "shifts"))
    again = trainer.train_and_evaluate(config, tmp_path / "run")
    assert output.read_metrics(tmp_path / "run") == before
    assert {k: again[k] for k in summary if k != "command"} == {
        k: v for k, v in summary.items() if k != "command"
    }
    assert 0.0 <= again["test_accuracy_shifts"] <= 1.0 and "test_accuracy_best_shifts" in again


def test_other_config_in_same_workdir_is_refused(two_epochs):
    workdir, _ = two_epochs
    with pytest.raises(ValueError, match="learning_rate"):
        trainer.train_and_evaluate(load_config("part3", num_epochs=2, learning_rate=0.5), workdir)


def test_duplicate_seeds_are_refused(tmp_path):
    with pytest.raises(ValueError, match="distinct"):
        trainer.train_and_evaluate(load_config("part3", seeds=(0, 0)), tmp_path)


def test_two_seeds_and_pretrained_init(two_epochs, tmp_path):
    """Two seeds in one program, initialised from another run's best params."""
    source, _ = two_epochs
    config = load_config("part3", "smoke,pretrained", seeds=(0, 10), init=str(source))
    summary = trainer.train_and_evaluate(config, tmp_path)
    assert summary["seeds"] == [0, 10] and len(summary["per_seed"]) == 2
    assert summary["test_accuracy"] == pytest.approx(
        np.mean([r["test_accuracy"] for r in summary["per_seed"]])
    )
    trained = params_of(tmp_path)
    assert jax.tree.leaves(trained)[0].shape[0] == 2
    # different seeds shuffle and drop out differently, so they end apart
    assert not np.array_equal(*jax.tree.leaves(trained)[0])


def test_missing_init_run_is_a_clear_error(tmp_path):
    config = load_config("part3", "smoke,pretrained", init=str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        trainer.train_and_evaluate(config, tmp_path / "run")
