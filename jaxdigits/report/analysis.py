"""Look at the mislabeled-MNIST study: the labels themselves, and what the networks learnt.

    python -m jaxdigits.report.analysis                              # the generated set
    python -m jaxdigits.report.analysis --data data/mnistTask3.zip   # a user's original set
    python -m jaxdigits.report.analysis \
        --naive ckpts/part3 --complementary ckpts/part3_complementary

Writes into --out (default results/analysis) analysis.md and its figures:
the complementary-label transition matrix (true class x folder label) of
the dataset, estimated from the data, and how uniform its wrong labels
are; a grid of sample images per folder; and, for the run directories
given, confusion matrices on the MNIST test split. A naive run (plain
cross-entropy on the wrong labels, configs/part3.py) is decoded by argmax
and by argmin; a complementary run (task "complementary", or a student of one) by
argmax. This module reads the labels; report/confusion.py runs the networks.

With --data, each image's true class is recovered by an exact pixel match
against MNIST train; images that match nothing, or several MNIST images
with different labels, are counted and left out of the matrix.
"""

import argparse
import pathlib
import sys

import numpy as np

from jaxdigits import output
from jaxdigits.data import mislabeled, mnist
from jaxdigits.data.errors import DataError
from jaxdigits.report.analysis_markdown import (
    COMPLEMENTARY_PNG,
    NAIVE_PNG,
    SAMPLES_PNG,
    TRANSITION_PNG,
    K,
    confusion_section,
    dataset_section,
    markdown,
)
from jaxdigits.report.confusion import confusion_entries, plot_entries, predict, run_config

MARKDOWN = "analysis.md"


# ---- the dataset's labels ---------------------------------------------------------------


def transition_matrix(true: np.ndarray, folder: np.ndarray, k: int = K) -> np.ndarray:
    """Counts [true class, folder label]; images of unknown class (true = -1) are left out.

    Row-normalised, it estimates p(folder label | true class): the complementary
    -label transition matrix a complementary loss assumes (uniform off the
    diagonal, zero on it).
    """
    true, folder = np.asarray(true, np.int64), np.asarray(folder, np.int64)
    known = true >= 0
    return np.bincount(true[known] * k + folder[known], minlength=k * k).reshape(k, k)


def row_shares(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its total (an empty row stays 0)."""
    totals = matrix.sum(axis=1, keepdims=True)
    return matrix / np.maximum(totals, 1)


def _chi2_sf(statistic: float, dof: int) -> float | None:
    """Upper tail of the chi-square distribution; None without scipy (not a direct dependency)."""
    try:
        from scipy import stats
    except ImportError:
        return None
    return float(stats.chi2.sf(statistic, dof))


def uniformity(matrix: np.ndarray) -> list[dict]:
    """Per true class: how far its wrong labels are from uniform over the other k-1 classes.

    `right` counts labels that are the true class (0 for complementary labels);
    `min_share`/`max_share` are the smallest and largest off-diagonal shares of
    the row (uniform: 1/(k-1) each); `chi2` tests the off-diagonal counts
    against uniform (k-2 degrees of freedom) and `p` is its p-value (None
    without scipy). A row with no images gives NaNs.
    """
    k = len(matrix)
    rows = []
    for c in range(k):
        row = matrix[c].astype(np.float64)
        wrong = np.delete(row, c)
        n, n_wrong = row.sum(), wrong.sum()
        record = {"class": c, "images": int(n), "right": int(matrix[c, c])}
        if n_wrong == 0:
            nan = float("nan")
            record.update(min_share=nan, max_share=nan, chi2=nan, p=None)
        else:
            expected = n_wrong / (k - 1)
            chi2 = float(np.sum((wrong - expected) ** 2 / expected))
            record.update(
                min_share=float(wrong.min() / n),
                max_share=float(wrong.max() / n),
                chi2=chi2,
                p=_chi2_sf(chi2, k - 2),
            )
        rows.append(record)
    return rows


def match_pixels(
    images: np.ndarray, reference_images: np.ndarray, reference_labels: np.ndarray
) -> tuple[np.ndarray, dict]:
    """The true class of each image, found by an exact pixel match in a labelled reference.

    A user's mnistTask3 carries only wrong labels; its images should be MNIST
    train's, byte for byte. Returns (labels int32 [N], stats): -1 where no
    reference image has the same pixels (e.g. re-encoded or resized images:
    nothing is guessed) or where several reference images with different
    labels do. stats: images, matched, unmatched, ambiguous (these three sum
    to images), and distinct_sources (how many different reference images
    were matched: below `matched` if an image appears twice).
    """
    images, reference_images = np.asarray(images), np.asarray(reference_images)
    n = len(images)
    labels = np.full(n, -1, np.int32)
    stats = {"images": n, "matched": 0, "unmatched": n, "ambiguous": 0, "distinct_sources": 0}
    if images.shape[1:] != reference_images.shape[1:] or images.dtype != reference_images.dtype:
        return labels, stats  # nothing can match byte for byte
    # pixels -> the reference's label, or -2 where duplicates disagree on it
    flat = reference_images.reshape(len(reference_images), -1)
    by_pixels: dict[bytes, int] = {}
    for image, label in zip(flat, np.asarray(reference_labels).tolist(), strict=True):
        key = image.tobytes()
        by_pixels[key] = label if by_pixels.get(key, label) == label else -2
    found = [by_pixels.get(image.tobytes(), -1) for image in images.reshape(n, -1)]
    found = np.asarray(found, np.int64)
    labels[found >= 0] = found[found >= 0]
    matched = found >= 0
    keys = {images[i].tobytes() for i in np.flatnonzero(matched)}
    stats.update(
        matched=int(matched.sum()),
        unmatched=int(np.sum(found == -1)),
        ambiguous=int(np.sum(found == -2)),
        distinct_sources=len(keys),
    )
    return labels, stats


def pick_samples(folders: np.ndarray, per_folder: int, seed: int = 0, k: int = K) -> np.ndarray:
    """Indices [k, per_folder] of random images of each folder (-1 where a folder has fewer).

    Random rather than the first files: a folder's files are in name order,
    which for an exported set is MNIST's order.
    """
    rng = np.random.default_rng(seed)
    picks = np.full((k, per_folder), -1, np.int64)
    for c in range(k):
        members = np.flatnonzero(folders == c)
        chosen = rng.choice(members, min(per_folder, len(members)), replace=False)
        picks[c, : len(chosen)] = np.sort(chosen)
    return picks


def sample_grid(path, images, folders, true=None, per_folder: int = 10, seed: int = 0):
    """Draws `per_folder` images of each folder (one row per folder) to a PNG.

    Each image is titled with its true class ("?" when unknown), so the
    figure shows at a glance that no folder holds its own digit. Returns the
    indices drawn, [k, per_folder], -1 for an empty cell.
    """
    plt = _pyplot()
    picks = pick_samples(np.asarray(folders), per_folder, seed)
    rows, cols = picks.shape
    fig, axes = plt.subplots(rows, cols, figsize=(0.9 * cols + 0.6, 1.1 * rows), squeeze=False)
    for (r, c), i in np.ndenumerate(picks):
        ax = axes[r, c]
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        if c == 0:
            ax.set_ylabel(f"folder {r}", fontsize=7)
        if i < 0:
            continue
        ax.imshow(images[i], cmap="gray", vmin=0, vmax=255)
        label = "?" if true is None or true[i] < 0 else str(true[i])
        ax.set_title(f"true {label}", fontsize=7, pad=2)
    fig.tight_layout(pad=0.3)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return picks


def plot_transition(path, matrix: np.ndarray, title: str):
    """Heatmap of the row shares, annotated with the counts."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    shares = row_shares(matrix)
    shown = ax.imshow(shares, cmap="Blues", vmin=0)
    dark = shares > 0.5 * shares.max()  # white counts there, black elsewhere
    for (i, j), v in np.ndenumerate(matrix):
        color = "white" if dark[i, j] else "black"
        ax.text(j, i, str(v), ha="center", va="center", fontsize=6, color=color)
    ticks = range(len(matrix))
    ax.set(title=title, xlabel="folder label", ylabel="true class", xticks=ticks, yticks=ticks)
    fig.colorbar(shown, ax=ax, label="share of the row")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# ---- the command ------------------------------------------------------------------------


def _trained_on(config) -> str:
    d = config.data
    return f"`{d.path}`" if d.path else f"generated, label seed {d.label_seed}"


def _run_dirs(values) -> list[str]:
    """--complementary A --complementary B,C -> [A, B, C]."""
    return [v for value in values or () for v in value.split(",") if v]


def _dataset(args):
    """(images, folder labels, true classes or -1, matching stats or None, description)."""
    if args.data:
        images, folders = mislabeled.load_original(args.data)
        reference, reference_labels = mnist.load("train", args.mnist_dir)
        true, stats = match_pixels(images, reference, reference_labels)
        description = (
            f"A user's mnistTask3 set, `{args.data}`: {len(images)} images of "
            f"{images.shape[2]}x{images.shape[1]} in folders 0..9."
        )
        return images, folders, true, stats, description
    images, folders, true = mislabeled.generate(args.label_seed, args.mnist_dir)
    description = (
        f"The generated mislabeled set (label seed {args.label_seed}): the {len(images)} MNIST "
        "train images, each filed under a class drawn uniformly from its 9 wrong classes."
    )
    return images, folders, true, None, description


def run(args) -> pathlib.Path:
    """Writes the analysis into args.out; returns the markdown's path."""
    naive_dirs, complementary_dirs = _run_dirs([args.naive]), _run_dirs(args.complementary)
    run_configs = {w: run_config(w, "classify") for w in naive_dirs}
    run_configs |= {w: run_config(w, "complementary") for w in complementary_dirs}
    out = pathlib.Path(args.out)

    images, folders, true, stats, description = _dataset(args)
    matrix = transition_matrix(true, folders)
    rows = uniformity(matrix)
    out.mkdir(parents=True, exist_ok=True)
    plot_transition(out / TRANSITION_PNG, matrix, "true class x folder label")
    sample_grid(out / SAMPLES_PNG, images, folders, true, args.samples)

    naive, complementary, runs = [], [], {}
    for workdir in naive_dirs:
        result = predict(workdir, run_configs[workdir], ("argmax", "argmin"), args.seed, args.which)
        name = f"naive {workdir}" if len(naive_dirs) > 1 else "naive"
        runs[name] = (workdir, _trained_on(run_configs[workdir]), result["seed"])
        preds = {d: result[d][1] for d in ("argmax", "argmin")}
        naive += confusion_entries(result["labels"], name, preds)
    for i, workdir in enumerate(complementary_dirs):
        result = predict(workdir, run_configs[workdir], ("argmax",), args.seed, args.which)
        name = f"complementary {i + 1}" if len(complementary_dirs) > 1 else "complementary"
        runs[name] = (workdir, _trained_on(run_configs[workdir]), result["seed"])
        complementary += confusion_entries(result["labels"], name, {"argmax": result["argmax"][1]})
    if naive:
        plot_entries(out / NAIVE_PNG, naive)
    if complementary:
        plot_entries(out / COMPLEMENTARY_PNG, complementary)

    text = markdown(
        dataset_section(description, matrix, rows, stats),
        confusion_section(naive, complementary, runs, args.which),
        args.samples,
    )
    path = out / MARKDOWN
    output.write_text(path, text)
    return path


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of images")
    return int(text)


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="results/analysis", help="folder for analysis.md, PNGs")
    parser.add_argument("--data", default="", help="a user's mnistTask3 folder or zip")
    parser.add_argument("--label-seed", type=int, default=0, help="seed of the generated set")
    parser.add_argument("--mnist-dir", default="", help="MNIST IDX folder ($JAXDIGITS_DATA_DIR)")
    parser.add_argument("--samples", type=_positive, default=10, help="images per folder")
    parser.add_argument("--naive", default="", help="run dir of plain cross-entropy (part3)")
    parser.add_argument(
        "--complementary",
        action="append",
        help="run dir(s) of a complementary loss; repeat, or separate with commas",
    )
    parser.add_argument("--seed", type=int, default=None, help="training seed (default: first)")
    parser.add_argument("--which", choices=("best", "last"), default="best", help="params")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    try:
        path = run(args)
    except (DataError, OSError, ValueError) as e:  # OSError: also an --out not writable
        sys.exit(f"error: {e}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
