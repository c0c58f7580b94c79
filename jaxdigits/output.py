"""What a run writes for people: metrics lines, summary.json, a table, figures."""

import json
import os
import pathlib
import platform

import numpy as np

from jaxdigits.runtime import parallel

METRICS, SUMMARY, CONFUSION = "metrics.jsonl", "summary.json", "confusion_test.png"
CONFIG = "config.json"
TABLES = "tables.md"  # the original's tables beside ours
SUMMARY_KEYS = ("test_accuracy", "val_accuracy", "epochs", "train_seconds")


def cpu_name() -> str:
    """The processor's model and core count, e.g. "Intel(R) Xeon(R) ..., 2 cores"."""
    model = platform.processor() or platform.machine()
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


def package_versions(packages) -> dict:
    """{package: installed version, or None}: recorded beside every measurement."""
    from importlib import metadata

    versions = {}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def device_name() -> str:
    """The accelerator's kind, or on the CPU backend cpu_name()."""
    import jax

    dev = jax.devices()[0]
    return cpu_name() if dev.platform == "cpu" else dev.device_kind


def append_metrics(workdir: pathlib.Path, record: dict):
    if not parallel.is_writer():
        return
    with open(workdir / METRICS, "a") as f:
        f.write(json.dumps(record) + "\n")


def truncate_metrics(workdir: pathlib.Path, last_epoch: int):
    """Keeps the metric lines up to `last_epoch` (a resumed run rewrites the rest)."""
    path = workdir / METRICS
    if path.exists():
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
        kept = [ln for ln in lines if json.loads(ln)["epoch"] <= last_epoch]
        write_text(path, "".join(ln + "\n" for ln in kept))


def read_metrics(workdir: pathlib.Path) -> list[dict]:
    path = workdir / METRICS
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def summary(seeds, per_seed: list[dict]) -> dict:
    """One record per seed; the top-level figures are their mean."""
    top = {k: float(np.mean([r[k] for r in per_seed])) for k in per_seed[0]}
    if len(seeds) > 1:
        top.update(seeds=list(seeds), per_seed=per_seed)
    return top


def write_text(path: pathlib.Path, text: str):
    """Replaces `path` atomically: a reader or a crash never leaves half a file.

    In a multi-process run only process 0 writes (as every writer here)."""
    if not parallel.is_writer():
        return
    tmp = path.with_suffix(path.suffix + ".partial")
    tmp.write_text(text)
    tmp.replace(path)


def write_json(path: pathlib.Path, data: dict):
    write_text(path, json.dumps(data, indent=2) + "\n")


def table(seeds, per_seed: list[dict]) -> str:
    lines = [
        "| seed | test acc | val acc | epochs | train s | best epoch | test acc (best) |",
        "|---" * 7 + "|",
    ]
    for seed, r in zip(seeds, per_seed, strict=True):
        lines.append(
            f"| {seed} | {100 * r['test_accuracy']:.2f} % | {100 * r['val_accuracy']:.2f} % "
            f"| {r['epochs']} | {r['train_seconds']:.0f} | {r['best_epoch']} "
            f"| {100 * r['test_accuracy_best']:.2f} % |"
        )
    return "\n".join(lines)


def confusion(labels: np.ndarray, preds: np.ndarray, n: int = 10) -> np.ndarray:
    """[true, predicted] counts; predictions outside 0..n-1 (a regressor's) are clipped."""
    preds = np.clip(preds, 0, n - 1)
    return np.bincount(labels * n + preds, minlength=n * n).reshape(n, n)


def plot_confusion(path: pathlib.Path, matrices: list[np.ndarray], titles: list[str], rows=1):
    if not parallel.is_writer():
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = len(matrices) // rows
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 4 * rows), squeeze=False)
    for ax, m, title in zip(axes.flat, matrices, titles, strict=True):
        ax.imshow(m, cmap="Blues")
        n = len(m)
        if n <= 12:  # counts are legible for digits, not for 37 sums
            for (i, j), v in np.ndenumerate(m):
                ax.text(j, i, str(v), ha="center", va="center", fontsize=6)
        ticks = range(0, n, 1 if n <= 12 else 5)
        ax.set(title=title, xlabel="predicted", ylabel="true", xticks=ticks, yticks=ticks)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
