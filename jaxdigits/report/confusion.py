"""The networks' side of the mislabeled-study analysis: one seed of a run on the MNIST test
split, its confusion matrix per decoding, and their figure (report.analysis writes them)."""

import numpy as np

from jaxdigits import defaults, output, saved_params
from jaxdigits.report.analysis_markdown import K


def run_config(workdir, task: str):
    """A run directory's config, checked to be a mislabeled-MNIST run of `task`.

    Checked before anything slow, so that a wrong directory fails at once. A student of a
    complementary run (config.teacher) counts as complementary: it learnt from the wrong
    labels too, through its teacher's answers.
    """
    config = defaults.load_saved(workdir)
    if config.data.name != "mislabeled":
        raise ValueError(f"{workdir}: trained on {config.data.name!r}, not the mislabeled set")
    student = task == "complementary" and config.task == "classify" and config.get("teacher")
    if config.task != task and not student:
        raise ValueError(f"{workdir}: a run of task {config.task!r}, not {task!r}")
    return config


def predict(workdir, config, decodes, seed: int | None = None, which: str = "best") -> dict:
    """MNIST test predictions of one seed of a run: {decode: (accuracy, predictions [n])}.

    Also "labels" (the test labels) and "seed". JAX is imported here only:
    the dataset analysis needs none of it.
    """
    import jax

    from jaxdigits import data, models, scoring

    seeds = list(config.seeds)
    seed = seeds[0] if seed is None else seed
    if seed not in seeds:
        raise ValueError(f"{workdir}: trained seeds {seeds}, not {seed}")
    last, best, frozen = saved_params.run_params(workdir)  # a run directory or a kept run
    params = best if which == "best" else last
    s = seeds.index(seed)
    params = jax.tree.map(lambda x: x[s : s + 1], params)  # keep the seed axis
    ds = data.build(config.data)
    model = models.build(config)
    result = {"labels": ds.test_labels, "seed": seed}
    [(accs, preds)] = scoring.test_metrics(  # every decode from one pass
        model,
        config,
        (ds.test_images, ds.test_labels),
        params,
        frozen=frozen,
        decode=tuple(decodes),
    )
    for decode, acc, pred in zip(decodes, accs, preds, strict=True):
        result[decode] = (float(acc[0]), pred[0])
    return result


def confusion_entries(labels: np.ndarray, name: str, predictions: dict) -> list[dict]:
    """One entry per decoding of a run: its confusion matrix, accuracy and the share of test
    images predicted as a class they are not (1 - accuracy, but named for what it means).
    """
    entries = []
    for decode, preds in predictions.items():
        preds = np.asarray(preds)
        entries.append(
            {
                "name": name,
                "decode": decode,
                "matrix": output.confusion(labels, preds, K),
                "accuracy": float(np.mean(preds == labels)),
                "not_the_class": float(np.mean(preds != labels)),
            }
        )
    return entries


def plot_entries(path, entries: list[dict]):
    matrices = [e["matrix"] for e in entries]
    titles = [f"{e['name']}, {e['decode']}: {100 * e['accuracy']:.2f} %" for e in entries]
    output.plot_confusion(path, matrices, titles)
