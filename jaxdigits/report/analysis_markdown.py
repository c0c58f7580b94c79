"""The Markdown of `python -m jaxdigits.report.analysis`: tables of the transition matrix and of its
uniformity, the confusion-matrix accuracies, and the explanation of the original's 0.2 %."""

import numpy as np

K = 10  # digit classes
TRANSITION_PNG, SAMPLES_PNG = "transition_matrix.png", "samples.png"
NAIVE_PNG, COMPLEMENTARY_PNG = "confusion_naive.png", "confusion_complementary.png"


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.2f} %"


def matrix_table(matrix: np.ndarray, row: str = "true", col: str = "folder") -> list[str]:
    k = len(matrix)
    lines = [
        f"| {row} \\ {col} | " + " | ".join(str(j) for j in range(k)) + " | total |",
        "|---" * (k + 2) + "|",
    ]
    for i in range(k):
        cells = " | ".join(f"**{v}**" if i == j else str(v) for j, v in enumerate(matrix[i]))
        lines.append(f"| {i} | {cells} | {matrix[i].sum()} |")
    return lines


def uniformity_table(rows: list[dict], k: int = K) -> list[str]:
    lines = [
        f"| true | images | right labels | min share | max share | chi² ({k - 2} dof) | p |",
        "|---" * 7 + "|",
    ]
    for r in rows:
        p = "n/a" if r["p"] is None else f"{r['p']:.3g}"
        lines.append(
            f"| {r['class']} | {r['images']} | {r['right']} | {_pct(r['min_share'])} "
            f"| {_pct(r['max_share'])} | {r['chi2']:.1f} | {p} |"
        )
    return lines


def dataset_section(description: str, matrix, rows, stats: dict | None) -> list[str]:
    k = len(matrix)
    right = sum(r["right"] for r in rows)
    lines = ["## The dataset", "", description, ""]
    if stats is not None:
        lines += [
            "True classes recovered by an exact pixel match against MNIST train:",
            "",
            f"- images: {stats['images']}",
            f"- matched one MNIST train image (or identical ones of one label): "
            f"{stats['matched']} ({stats['distinct_sources']} distinct MNIST images)",
            f"- matched no MNIST train image: {stats['unmatched']}",
            f"- matched MNIST train images of different labels (ambiguous): {stats['ambiguous']}",
            "",
            "Unmatched and ambiguous images are left out of the matrix below.",
            "",
        ]
    lines += [
        "## Complementary-label transition matrix",
        "",
        "Counts of images by true class (rows) and folder label (columns); the diagonal, "
        "in bold, counts labels that are right.",
        "",
        *matrix_table(matrix),
        "",
        f"![transition matrix]({TRANSITION_PNG})",
        "",
        "### How uniform are the wrong labels?",
        "",
        f"Labels that are the true class: {right} of {int(matrix.sum())}. Shares are of the "
        f"row; uniform over the {k - 1} wrong classes is {_pct(1 / (k - 1))} each. chi² tests "
        f"each row's {k - 1} off-diagonal counts against uniform.",
        "",
        *uniformity_table(rows, k),
        "",
    ]
    return lines


def confusion_section(
    naive: list[dict], complementary: list[dict], runs: dict, which: str = "best"
) -> list[str]:
    if not naive and not complementary:
        return []
    params = {"best": "best params (lowest validation loss)", "last": "last params"}
    lines = [
        "## The networks on the MNIST test split",
        "",
        f"One seed of each run, its {params[which]}.",
        "",
        "| run | directory | trained on | seed | test images | decoded by | test accuracy |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in naive + complementary:
        workdir, trained_on, seed = runs[e["name"]]
        lines.append(
            f"| {e['name']} | `{workdir}` | {trained_on} | {seed} | {e['matrix'].sum()} "
            f"| {e['decode']} | {_pct(e['accuracy'])} |"
        )
    lines.append("")
    argmax = [e for e in naive if e["decode"] == "argmax"]
    if argmax:
        lines += [
            f"Naive run, argmax: {_pct(argmax[0]['not_the_class'])} of the test images are "
            "predicted as a class they are not; chance would give 90 %, the original gave "
            "99.8 % (its 0.2 % test accuracy). Near 100 %, the network has learnt which "
            "classes an image is not; argmin reads the true class off the same outputs, as "
            "far as the network has learnt it. With the original's class weights (double "
            "loss for labels 0, 1 and 5) those classes are rarely the least likely, so "
            "argmin seldom predicts them.",
            "",
            f"![naive run]({NAIVE_PNG})",
            "",
        ]
    if complementary:
        lines += [f"![complementary runs]({COMPLEMENTARY_PNG})", ""]
    return lines


EXPLANATION = """## Why

Every label in this set names a class the image is *not*: a complementary
label. A network trained with plain cross-entropy on such labels learns
p(wrong label | x). For an image of class y that is (ideally) 1/9 on each
other class and 0 on y itself, so its argmax is always some class the image
is not, and the test accuracy falls far below the 10 % of chance (the
original's 0.2 %). The network did learn the digits: the argmin of the same
outputs, the least likely wrong label, is the true class. A complementary
loss (forward-corrected -log(1 - p[label]), Ishida et al.'s unbiased
estimator) trains the network to put its mass on the true class directly,
so its argmax is the prediction.
"""


def markdown(dataset: list[str], confusions: list[str], samples: int) -> str:
    lines = ["# The mislabeled-MNIST study, analysed", "", *dataset]
    lines += [
        "## Samples",
        "",
        f"{samples} random images of each folder (rows), titled with their true class.",
        "",
        f"![samples]({SAMPLES_PNG})",
        "",
        *confusions,
        EXPLANATION,
    ]
    return "\n".join(lines)
