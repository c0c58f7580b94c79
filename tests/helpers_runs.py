"""Comparing two run directories: the same run, wall times aside."""

import json

import jax
import numpy as np

from jaxdigits import output, saved_params


def assert_same_tree(a, b):
    paths_a, leaves_a = zip(*jax.tree_util.tree_leaves_with_path(a), strict=True)
    paths_b, leaves_b = zip(*jax.tree_util.tree_leaves_with_path(b), strict=True)
    assert paths_a == paths_b
    for path, x, y in zip(paths_a, leaves_a, leaves_b, strict=True):
        np.testing.assert_array_equal(x, y, err_msg=jax.tree_util.keystr(path))


def metric_lines(workdir) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in output.read_metrics(workdir)]


def assert_same_run(reference, workdir, summary=True):
    """Same final state (all but wall times), metric lines and (if `summary`) summary.json."""
    a, b = saved_params.restore_latest(reference), saved_params.restore_latest(workdir)
    a.pop("train_seconds"), b.pop("train_seconds")
    assert_same_tree(a, b)
    assert metric_lines(workdir) == metric_lines(reference)
    if not summary:
        return

    def read(w):
        s = json.loads((w / output.SUMMARY).read_text())
        for r in [s, *s.get("per_seed", [])]:
            r.pop("train_seconds"), r.pop("command", None)
        return s

    assert read(workdir) == read(reference)
