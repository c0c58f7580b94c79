"""The cells of the report's tables, each from a run's summary.json and config.json."""

import pathlib
import shlex

from jaxdigits.report import originals
from jaxdigits.report.runs import Run, loss_name

EXPERIMENT = {
    "mislabeled": "Mislabeled MNIST",
    "complementary": "Mislabeled MNIST",
    "digitsum": "Digit sums",
    "other": "Mislabeled MNIST, Parts 1-2",
}


def percent_cell(percents) -> str:
    """ "12.59 % (13.24 / 12.38 / 12.17)": the mean, then each seed's value in seed order."""
    if not percents:
        return "—"
    mean = f"{sum(percents) / len(percents):.2f} %"
    if len(percents) == 1:
        return mean
    return f"{mean} ({' / '.join(f'{p:.2f}' for p in percents)})"


def duration(seconds) -> str:
    """ "53 min 44 s": wall times as the original reported them."""
    if seconds is None:
        return "—"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


def pct(value) -> str:
    return "—" if value is None else f"{value:.2f} %"


def code(text: str) -> str:
    """Inline code that survives a Markdown table: pipes escaped."""
    escaped = text.replace("|", "\\|")
    return f"`{escaped}`"


def config_cell(run: Run) -> str:
    """The training command without what every row shares (the module, the workdir),
    e.g. `configs/part3.py:pretrained --config.num_epochs=6`; older runs without a
    recorded command: the config's model, task and data."""
    command = run.summary.get("command")
    if not command:
        c = run.config
        return f"{c['model']}, {c['task']}, {c['data']['name']} (no command recorded)"
    try:
        words = shlex.split(command)
    except ValueError:
        return code(command)
    if words[:3] == ["python", "-m", "jaxdigits.train"]:
        words = words[3:]
    kept, skip = [], False
    for w in words:
        if skip:
            skip = False
        elif w == "--workdir":
            skip = True
        elif not w.startswith("--workdir="):
            kept.append(w)
    if kept and kept[0] == "--config" and len(kept) > 1:
        kept = kept[1:]
    elif kept and kept[0].startswith("--config="):
        kept[0] = kept[0].removeprefix("--config=")
    return code(shlex.join(kept))


def seeds_cell(run: Run) -> str:
    return ", ".join(str(s) for s in run.seeds)


def what(run: Run) -> str:
    """Headline label: faithful reproduction of an original, or new."""
    c = run.config
    if run.group == "mislabeled":
        start = f"from {c['init']}" if c.get("init") else "scratch"
        kind = "faithful" if c["model"] == "five_conv" else f"new: {c['model']}"
        return f"ours, {kind}, {start}"
    # a new network continued from another run names it (config.init is that run's path)
    more = f", continued from {pathlib.PurePath(c['init']).name}" if c.get("init") else ""
    if run.group == "complementary":
        return f"ours, new: {loss_name(c)}, {c['model']}{more}"
    if run.group == "digitsum":
        if c.get("original"):
            return f"ours, faithful {originals.DIGITSUM_NAME.get(c['original'], c['original'])}"
        return f"ours, new: {c['model']}, {loss_name(c)}{more}"
    start = f"from {c['init']}" if c.get("init") else "scratch"
    if c["data"]["name"] == "digits":
        return f"ours, Part 1: pretraining on digits, {c['model']}"
    return f"ours, Part 2: {c['data']['name']}, {start}, {c['model']}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def by_group(runs, group):
    return [r for r in runs if r.group == group]
