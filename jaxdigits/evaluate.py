"""Evaluate a run's checkpoints:  python -m jaxdigits.evaluate --workdir ckpts/part3

Restores the run's config, its best params and its last training state
(orbax), recomputes every seed's test accuracy with both, and the last
params' validation accuracy (and training-split accuracy, where the run
reported it), compares them with summary.json and redraws the confusion
matrices. Exits non-zero if a number differs.

    python -m jaxdigits.evaluate --workdir results/runs/digitsum_centres \
        --add_tests touching-4,overlap-4

scores a finished digit-sum run, or one kept in the repo with its params, on further test
sets (data.extra_tests names), and adds their accuracies to its summary.json and their names
to its config.json; nothing else in either changes. The name `digits` adds the per-digit
accuracy of a network that reads the digits (scoring.digit_accuracies).
"""

import json
import pathlib
import sys

import jax.numpy as jnp
import numpy as np
from absl import flags, logging

from jaxdigits import data, defaults, models, output, saved_params, scoring, trainer
from jaxdigits.runtime import cli as cli_app
from jaxdigits.runtime import compile_cache

flags.DEFINE_string("workdir", None, "A run directory written by jaxdigits.train.")
flags.mark_flag_as_required("workdir")
flags.DEFINE_list(
    "add_tests",
    [],
    "Further digit-sum test sets to score and add to summary.json, e.g. touching-4.",
)
compile_cache.define_flag()


def evaluate(workdir) -> dict:
    """Per-seed accuracies recomputed from the checkpoints, and summary.json's under "stored"."""
    workdir = pathlib.Path(workdir)
    config = defaults.load_saved(workdir)
    restored = saved_params.restore_best(workdir)
    best, frozen = restored["best_params"], restored.get("frozen", {})
    last = saved_params.restore_latest(workdir)["train"]["params"]
    ds = data.build(config.data)
    model = models.build(config)
    (best_acc, best_preds), (last_acc, last_preds) = scoring.test_metrics(
        model, config, (ds.test_images, ds.test_labels), best, last, frozen=frozen
    )
    scoring.plot_confusions(workdir, config.seeds, ds.test_labels, last_preds, best_preds)
    result = {"test_accuracy_best": best_acc.tolist(), "test_accuracy": last_acc.tolist()}
    # validation (and training-split) accuracy of the last params, on each seed's own split
    train_idx, val_idx = trainer._splits(len(ds.labels), config)
    splits = {"val_accuracy": val_idx}
    if config.eval_train_split:
        splits["train_accuracy"] = train_idx
    evaluator = scoring.evaluator(model, config)
    images, labels = jnp.asarray(ds.images), jnp.asarray(ds.labels)
    for key, idx in splits.items():
        _, acc, _ = evaluator(last, frozen, images, labels, idx, config.data.mean, config.data.std)
        result[key] = acc.tolist()
    summary_path = workdir / output.SUMMARY
    stored = None
    if summary_path.exists():
        records = json.loads(summary_path.read_text())
        records = records.get("per_seed", [records])
        stored = {k: [r[k] for r in records] for k in result}
    return {"seeds": list(config.seeds), **result, "stored": stored}


DIGITS = "digits"  # --add_tests name of the per-digit accuracy


def add_tests(workdir, names) -> dict:
    """Scores the last and best params of finished run `workdir` (kept or not) on the extra test
    sets `names`, adds `test_accuracy_<name>` and `test_accuracy_best_<name>` per seed to its
    summary.json and the names to its config.json's data.extra_tests; returns the summary."""
    workdir = pathlib.Path(workdir)
    config = defaults.load_saved(workdir)
    summary_path = workdir / output.SUMMARY
    if not summary_path.exists():
        raise FileNotFoundError(f"{summary_path}: missing (the run has not finished)")
    rule = data.spec(config.data.name).extra_test_rule
    if rule is None:
        raise ValueError(f"{workdir}: data.name {config.data.name!r} has no extra tests")
    model = models.build(config)
    digits = DIGITS in names
    names = [n for n in names if n != DIGITS]
    for name in names:
        if problem := rule(name):
            raise ValueError(f"--add_tests: {problem}")
    if digits and not hasattr(model, "digits"):
        raise ValueError(f"--add_tests: {config.model} reads no single digits")
    last, best, frozen = saved_params.run_params(workdir)
    scored = config.copy_and_resolve_references()
    scored.data.extra_tests = tuple(names)
    accs = scoring.extra_test_accuracies(model, scored, last, best, frozen)
    if digits:
        accs.update(scoring.digit_accuracies(model, config, last, best, frozen))
    summary = json.loads(summary_path.read_text())
    per_seed = summary.get("per_seed", [summary])
    for i, record in enumerate(per_seed):
        record.update({k: float(v[i]) for k, v in accs.items()})
    if "per_seed" in summary:
        summary.update({k: float(np.mean(v)) for k, v in accs.items()})
    saved = json.loads((workdir / output.CONFIG).read_text())
    known = list(saved["data"].get("extra_tests", []))
    saved["data"]["extra_tests"] = known + [n for n in names if n not in known]
    output.write_json(workdir / output.CONFIG, saved)
    output.write_json(summary_path, summary)
    return summary


KEYS = {
    "test_accuracy": "test, last params",
    "test_accuracy_best": "test, best params",
    "val_accuracy": "validation, last params",
    "train_accuracy": "training split, last params",
}


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    compile_cache.setup(flags.FLAGS.compilation_cache)
    if flags.FLAGS.add_tests:
        try:
            summary = add_tests(flags.FLAGS.workdir, flags.FLAGS.add_tests)
        except (data.DataError, FileNotFoundError, ValueError) as e:
            sys.exit(f"error: {e}")
        for name in flags.FLAGS.add_tests:
            key = "digit_accuracy" if name == DIGITS else f"test_accuracy_{name}"
            last, best = summary[key], summary[key.replace("accuracy", "accuracy_best", 1)]
            print(f"{name}: {100 * last:.2f} % (best params {100 * best:.2f} %)")
        return
    try:
        result = evaluate(flags.FLAGS.workdir)
    except (data.DataError, FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    stored = result["stored"]
    print("| seed | accuracy | restored | summary.json |\n|---|---|---|---|")
    for key in KEYS:
        if key not in result:
            continue
        refs = stored[key] if stored else [float("nan")] * len(result["seeds"])
        for seed, acc, ref in zip(result["seeds"], result[key], refs, strict=True):
            print(f"| {seed} | {KEYS[key]} | {100 * acc:.2f} % | {100 * ref:.2f} % |")
    if stored is None:
        sys.exit("error: no summary.json to compare with (the run has not finished)")
    if any(not np.array_equal(result[k], stored[k]) for k in stored):
        sys.exit("error: the restored checkpoints do not reproduce summary.json")
    print("matches summary.json")


def cli():
    """The `jaxdigits-evaluate` command."""
    cli_app.run(main, (__name__, compile_cache.__name__))


if __name__ == "__main__":
    cli()
