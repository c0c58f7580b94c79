"""Evaluate a run's best checkpoint:  python -m jaxdigits.evaluate --workdir ckpts/part3

Restores the best params (orbax) and the run's config, recomputes the
MNIST test accuracy of every seed, compares it with summary.json and
redraws the confusion matrix. Exits non-zero if the numbers differ.
"""

import json
import pathlib
import sys

import ml_collections
import numpy as np
from absl import app, flags, logging

from jaxdigits import checkpoint, data, models, output, trainer

flags.DEFINE_string("workdir", None, "A run directory written by jaxdigits.train.")
flags.mark_flag_as_required("workdir")


def load_config(workdir: pathlib.Path) -> ml_collections.ConfigDict:
    path = workdir / trainer.CONFIG
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; is {workdir} a jaxdigits run directory?")
    return ml_collections.ConfigDict(json.loads(path.read_text()))


def evaluate(workdir) -> dict:
    """Per-seed test accuracy of the best checkpoint, and the stored summary's."""
    workdir = pathlib.Path(workdir)
    config = load_config(workdir)
    best = checkpoint.restore_best(workdir)
    ds = data.build(config.data)
    model = models.get(config.model, num_classes=config.num_classes)
    acc, preds = trainer.test_metrics(model, config, ds, best["best_params"])
    matrices = [output.confusion(ds.test_labels, p) for p in preds]
    output.plot_confusion(
        workdir / output.CONFUSION, matrices, [f"seed {s}: MNIST test" for s in config.seeds]
    )
    summary_path = workdir / output.SUMMARY
    stored = json.loads(summary_path.read_text()) if summary_path.exists() else None
    if stored is None:
        stored_acc = None
    else:
        stored_acc = [r["test_accuracy"] for r in stored.get("per_seed", [stored])]
    return {"seeds": list(config.seeds), "test_accuracy": acc.tolist(), "stored": stored_acc}


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    try:
        result = evaluate(flags.FLAGS.workdir)
    except (data.DataError, FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    print("| seed | test acc (restored) | test acc (summary.json) |\n|---|---|---|")
    stored = result["stored"] or [float("nan")] * len(result["seeds"])
    for seed, acc, ref in zip(result["seeds"], result["test_accuracy"], stored, strict=True):
        print(f"| {seed} | {100 * acc:.2f} % | {100 * ref:.2f} % |")
    if result["stored"] is None:
        sys.exit("error: no summary.json to compare with (the run has not finished)")
    if not np.array_equal(result["test_accuracy"], result["stored"]):
        sys.exit("error: the restored checkpoint does not reproduce summary.json")
    print("matches summary.json")


if __name__ == "__main__":
    app.run(main)
