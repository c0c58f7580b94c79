"""The headline table: the originals' numbers beside ours, one row per result, and a row
naming the command for each original not yet reproduced among the runs."""

from jaxdigits.report import cells, originals
from jaxdigits.report.runs import Run

DIGITSUM_CONFIG = {
    "cnn_regressor": "configs/digitsum_regressor.py",
    "cnn_classifier": "configs/digitsum_classifier.py",
    "vgg_regressor": "configs/digitsum_vgg.py",
}
NOT_REPORTED = "not reported"


def _faithful_part3(runs, pretrained: bool) -> bool:
    return any(
        r.config["model"] == "five_conv" and bool(r.config.get("init")) == pretrained
        for r in cells.by_group(runs, "mislabeled")
    )


# Originals we cannot reproduce here, and why (the row says so instead of "not run").
CANNOT_RUN = {
    "configs/digitsum_vgg.py": (
        "needs the ImageNet VGG11 weights",
        "configs/digitsum_vgg.py --config.vgg_weights=vgg11-8a719046.pth",
    ),
}


def _not_run(experiment, label, config_file):
    why, config = CANNOT_RUN.get(config_file, ("not run", config_file))
    command = f"python -m jaxdigits.train --config {config} --workdir ckpts/..."
    return [experiment, label, why, cells.code(command), "—", "—", "—", "—", "—"]


HEADLINE_HEADER = [
    "experiment",
    "what",
    "run",
    "config",
    "test acc",
    "val acc",
    "seeds",
    "device",
    "wall time",
]


def _row(run: Run, label=None, test_key="test_accuracy", val_key="val_accuracy"):
    return [
        cells.EXPERIMENT[run.group],
        label or cells.what(run),
        run.name,
        cells.config_cell(run),
        cells.percent_cell(run.percents(test_key)),
        cells.percent_cell(run.percents(val_key)) if val_key else "—",
        cells.seeds_cell(run),
        run.summary.get("device", "—"),
        cells.duration(run.wall_seconds()),
    ]


# The new digit-sum networks on every test set: summary.json's key, the column's name.
HARDER_TESTS = (
    ("test_accuracy", "study's canvases"),
    ("test_accuracy_anywhere-4", "anywhere"),
    ("test_accuracy_touching-4", "touching"),
    ("test_accuracy_overlap-4", "overlapping 1-3 px"),
    ("test_accuracy_anywhere-3", "3 digits anywhere"),
    ("test_accuracy_anywhere-5", "5 digits anywhere"),
    ("digit_accuracy", "single digits"),
)


def harder_tests(runs: list[Run]) -> str:
    """The new digit-sum networks, one row each, on the study's test canvases and on the
    same MNIST test digits placed otherwise ("—": the run was not scored on that set)."""
    rows = [
        [cells.what(run), run.name, *(cells.percent_cell(run.percents(k)) for k, _ in HARDER_TESTS)]
        for run in cells.by_group(runs, "digitsum")
        if not run.config.get("original")
    ]
    if not rows:
        return ""
    header = ["digit sums from the sums alone", "run", *(name for _, name in HARDER_TESTS)]
    return cells.table(header, rows) + "\n\n" + HARDER_NOTES


HARDER_NOTES = """\
The study's 10,000 test canvases, then their digits placed anywhere along the width \
(never touching), with their ink touching, with 1-3 px of ink over each other; 3 or 5 \
MNIST test digits anywhere; `single digits`: each digit a network reads, scored against the \
generator's (never used in training). The mean, then each seed's value."""


def headline(runs: list[Run]) -> str:
    """One row per original result and per run (two for a cross-entropy run on the mislabeled
    set: its argmax, the original's protocol, and its argmin decoding), grouped by study.
    An original with no reproduction among `runs` gets a "not run" row."""
    rows = []
    mislabeled = cells.EXPERIMENT["mislabeled"]
    for label, _, test, val, seconds in originals.MISLABELED:
        rows.append(
            [mislabeled, f"*original*, {label}", "—", "—", cells.pct(test), cells.pct(val), "—"]
            + [originals.MISLABELED_DEVICE, cells.duration(seconds)]
        )
    for run in cells.by_group(runs, "mislabeled"):
        rows.append(_row(run, cells.what(run) + " (argmax)"))
        if run.values("test_accuracy_argmin") is not None:
            rows.append(
                _row(run, cells.what(run) + " (argmin decoding)", "test_accuracy_argmin", None)
            )
    for label, config_file, *_ in originals.MISLABELED:
        if not _faithful_part3(runs, pretrained=config_file.endswith(":pretrained")):
            rows.append(_not_run(mislabeled, f"ours, faithful, {label}", config_file))
    for run in cells.by_group(runs, "complementary"):
        rows.append(_row(run))
        shifts = run.percents("test_accuracy_shifts")
        if shifts is not None:  # in the same cell: one row per run
            rows[-1][4] += f"; {cells.pct(sum(shifts) / len(shifts))} {SHIFTS}"

    digitsum = cells.EXPERIMENT["digitsum"]
    done = {r.config.get("original") for r in cells.by_group(runs, "digitsum")}
    for model, reported in originals.DIGITSUM.items():
        val = cells.percent_cell([v for v, _ in reported.values()])
        seeds = ", ".join(str(s) for s in reported)
        rows.append(
            [digitsum, f"*original* {originals.DIGITSUM_NAME[model]}", "—", "—", "—", val, seeds]
            + [NOT_REPORTED, NOT_REPORTED]
        )
    digitsum_runs = cells.by_group(runs, "digitsum")
    rows += [_row(r) for r in digitsum_runs if r.config.get("original")]
    for model in originals.DIGITSUM:
        if model not in done:
            label = f"ours, faithful {originals.DIGITSUM_NAME[model]}"
            rows.append(_not_run(digitsum, label, DIGITSUM_CONFIG[model]))
    rows += [_row(run) for run in digitsum_runs if not run.config.get("original")]
    rows += [_row(run) for run in cells.by_group(runs, "other")]
    harder = harder_tests(runs)
    return "\n\n".join(filter(None, [cells.table(HEADLINE_HEADER, rows), HEADLINE_NOTES, harder]))


SHIFTS = "over 9 shifts"
HEADLINE_NOTES = f"""\
Accuracies: the mean over seeds, then each seed's value in seed order. `test acc`: \
the params at the end of training (the originals' protocol) on the real MNIST test \
split (mislabeled MNIST) or on 10,000 canvases of four MNIST test digits (digit sums; \
the original reported no test accuracy). `val acc`: on each run's own validation split \
against its own labels; on the mislabeled set those labels are all wrong, so it says \
how often the network predicts the wrong label. The digit-sum original reported \
validation accuracy only (about 11 % for its best model; 6.7 % is always answering \
18). `wall time`: the training epochs' wall time, compilation included; seeds \
trained together in one program share it, so it is the program's time. `{SHIFTS}`: \
the mean of the probabilities over each test image and its 8 one-pixel shifts."""
