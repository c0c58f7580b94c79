"""The report's figures: learning curves from metrics.jsonl, and links to each run's
confusion matrix (relative to the report)."""

import os
import pathlib
import urllib.parse

from jaxdigits import output
from jaxdigits.report.runs import Run, loss_name

FIGURES = "figures"  # beside the report


def curves(run: Run, key: str) -> list[tuple[list[int], list[float]]]:
    """Per seed (epochs, values) of a metric in metrics.jsonl, over the epochs the seed
    trained: a seed stopped early keeps being evaluated while the others train."""
    out = []
    for i in range(len(run.seeds)):
        points = [
            (m["epoch"], m[key][i])
            for m in run.metrics
            if key in m and i < len(m[key]) and m.get("active", [True] * (i + 1))[i]
        ]
        out.append(([e for e, _ in points], [v for _, v in points]))
    return out


def plot_curves(path: pathlib.Path, runs: list[Run], title: str) -> bool:
    """Validation loss and accuracy per epoch, a colour per run and a line style per seed.

    Each run's loss is its own (MSE, cross-entropy, the forward complementary
    loss), named in the legend. False (and no file) if no run has metrics.
    """
    runs = [r for r in runs if r.metrics]
    if not runs:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    styles = ("-", "--", ":", "-.")
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4.5))
    for i, run in enumerate(runs):
        color = f"C{i % 10}"
        loss = "forward" if run.config["task"] == "complementary" else loss_name(run.config)
        losses, accs = curves(run, "val_loss"), curves(run, "val_accuracy")
        for j, seed in enumerate(run.seeds):
            style = dict(color=color, linestyle=styles[j % len(styles)], marker=".")
            ax_loss.plot(*losses[j], label=f"{run.name}, seed {seed} ({loss})", **style)
            ax_acc.plot(accs[j][0], [100 * a for a in accs[j][1]], **style)
    ax_loss.set(xlabel="epoch", ylabel="validation loss (each run's own)", title="val loss")
    ax_acc.set(xlabel="epoch", ylabel="validation accuracy (%)", title="val accuracy")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax_loss.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def link(path: pathlib.Path, base: pathlib.Path) -> str:
    return urllib.parse.quote(pathlib.Path(os.path.relpath(path, base)).as_posix())


def confusion_links(runs: list[Run], out_dir: pathlib.Path) -> list[str]:
    """Markdown links, relative to out_dir, to each run's confusion_test.png."""
    return [
        f"[{run.name}]({link(run.path / output.CONFUSION, out_dir)})"
        for run in runs
        if (run.path / output.CONFUSION).is_file()
    ]
