"""The report's tables: the headline (the originals' numbers beside ours, one row per
result) and one table per group of runs, per seed; every cell from the runs' summary.json."""

import shlex

from jaxdigits.report import originals
from jaxdigits.report.runs import Run, loss_name

# Study A, Part 3, as reported (ORIGINAL_EXPERIMENTS.md): one GPU, batch 32, 4 epochs.
# (label, our config that reproduces it, test acc %, val acc % vs its wrong labels, seconds)
MISLABELED_ORIGINAL = (
    ("scratch", "configs/part3.py", 0.20, 11.55, 6 * 60 + 16),
    ("from Part 1 network", "configs/part3.py:pretrained", 0.19, 11.03, 6 * 60 + 57),
)
MISLABELED_EPOCHS = 4
MISLABELED_DEVICE = "one GPU (model not reported)"
# Study B: originals.DIGITSUM holds its per-seed numbers; our config for each model.
DIGITSUM_CONFIG = {
    "cnn_regressor": "configs/digitsum_regressor.py",
    "cnn_classifier": "configs/digitsum_classifier.py",
    "vgg_regressor": "configs/digitsum_vgg.py",
}
DIGITSUM_NAME = {
    "cnn_regressor": "CNN regressor",
    "cnn_classifier": "CNN classifier",
    "vgg_regressor": "VGG regressor",
}
NOT_REPORTED = "not reported"

GROUPS = {  # section order of the report
    "mislabeled": "Mislabeled MNIST, cross-entropy on the wrong labels (the original's Part 3)",
    "complementary": "Mislabeled MNIST, the wrong labels read as complementary labels (new)",
    "digitsum": "Digit sums",
    "other": "Other runs (Parts 1 and 2; the originals reported no numbers)",
}
EXPERIMENT = {
    "mislabeled": "Mislabeled MNIST",
    "complementary": "Mislabeled MNIST",
    "digitsum": "Digit sums",
    "other": "Mislabeled MNIST, Parts 1-2",
}


# -- cells ------------------------------------------------------------------------------


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


def _pct(value) -> str:
    return "—" if value is None else f"{value:.2f} %"


def _code(text: str) -> str:
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
        return _code(command)
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
    return _code(shlex.join(kept))


def seeds_cell(run: Run) -> str:
    return ", ".join(str(s) for s in run.seeds)


def what(run: Run) -> str:
    """Headline label: faithful reproduction of an original, or new."""
    c = run.config
    if run.group == "mislabeled":
        start = f"from {c['init']}" if c.get("init") else "scratch"
        kind = "faithful" if c["model"] == "five_conv" else f"new: {c['model']}"
        return f"ours, {kind}, {start}"
    if run.group == "complementary":
        return f"ours, new: {loss_name(c)}, {c['model']}"
    if run.group == "digitsum":
        if c.get("original"):
            return f"ours, faithful {DIGITSUM_NAME.get(c['original'], c['original'])}"
        return f"ours, new: {c['model']}, {loss_name(c)}"
    start = f"from {c['init']}" if c.get("init") else "scratch"
    if c["data"]["name"] == "digits":
        return f"ours, Part 1: pretraining on digits, {c['model']}"
    return f"ours, Part 2: {c['data']['name']}, {start}, {c['model']}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _by_group(runs, group):
    return [r for r in runs if r.group == group]


def _faithful_part3(runs, pretrained: bool) -> bool:
    return any(
        r.config["model"] == "five_conv" and bool(r.config.get("init")) == pretrained
        for r in _by_group(runs, "mislabeled")
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
    return [experiment, label, why, _code(command), "—", "—", "—", "—", "—"]


# -- the headline -----------------------------------------------------------------------

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
        EXPERIMENT[run.group],
        label or what(run),
        run.name,
        config_cell(run),
        percent_cell(run.percents(test_key)),
        percent_cell(run.percents(val_key)) if val_key else "—",
        seeds_cell(run),
        run.summary.get("device", "—"),
        duration(run.wall_seconds()),
    ]


def headline(runs: list[Run]) -> str:
    """One row per original result and per run (two for a cross-entropy run on the mislabeled
    set: its argmax, the original's protocol, and its argmin decoding), grouped by study.
    An original with no reproduction among `runs` gets a "not run" row."""
    rows = []
    mislabeled = EXPERIMENT["mislabeled"]
    for label, _, test, val, seconds in MISLABELED_ORIGINAL:
        rows.append(
            [mislabeled, f"*original*, {label}", "—", "—", _pct(test), _pct(val), "—"]
            + [MISLABELED_DEVICE, duration(seconds)]
        )
    for run in _by_group(runs, "mislabeled"):
        rows.append(_row(run, what(run) + " (argmax)"))
        if run.values("test_accuracy_argmin") is not None:
            rows.append(_row(run, what(run) + " (argmin decoding)", "test_accuracy_argmin", None))
    for label, config_file, *_ in MISLABELED_ORIGINAL:
        if not _faithful_part3(runs, pretrained=config_file.endswith(":pretrained")):
            rows.append(_not_run(mislabeled, f"ours, faithful, {label}", config_file))
    rows += [_row(run) for run in _by_group(runs, "complementary")]

    digitsum = EXPERIMENT["digitsum"]
    done = {r.config.get("original") for r in _by_group(runs, "digitsum")}
    for model, reported in originals.DIGITSUM.items():
        val = percent_cell([v for v, _ in reported.values()])
        seeds = ", ".join(str(s) for s in reported)
        rows.append(
            [digitsum, f"*original* {DIGITSUM_NAME[model]}", "—", "—", "—", val, seeds]
            + [NOT_REPORTED, NOT_REPORTED]
        )
    digitsum_runs = _by_group(runs, "digitsum")
    rows += [_row(r) for r in digitsum_runs if r.config.get("original")]
    for model in originals.DIGITSUM:
        if model not in done:
            label = f"ours, faithful {DIGITSUM_NAME[model]}"
            rows.append(_not_run(digitsum, label, DIGITSUM_CONFIG[model]))
    rows += [_row(r) for r in digitsum_runs if not r.config.get("original")]
    rows += [_row(run) for run in _by_group(runs, "other")]
    return table(HEADLINE_HEADER, rows) + "\n\n" + HEADLINE_NOTES


HEADLINE_NOTES = """\
Accuracies: the mean over seeds, then each seed's value in seed order. `test acc`: \
the params at the end of training (the originals' protocol) on the real MNIST test \
split (mislabeled MNIST) or on 10,000 canvases of four MNIST test digits (digit sums; \
the original reported no test accuracy). `val acc`: on each run's own validation split \
against its own labels; on the mislabeled set those labels are all wrong, so it says \
how often the network predicts the wrong label. The digit-sum original reported \
validation accuracy only (about 11 % for its best model; 6.7 % is always answering \
18). `wall time`: the training epochs' wall time, compilation included; seeds \
trained together in one program share it, so it is the program's time."""


# -- per-group tables -------------------------------------------------------------------


def _seed_rows(run: Run, cells) -> list[list[str]]:
    """One row per seed: `cells(record)` gives the cells after run and seed."""
    return [
        [run.name, str(seed), *cells(record)]
        for seed, record in zip(run.seeds, run.records, strict=True)
    ]


def _get_pct(record, key) -> str:
    return _pct(100 * record[key]) if key in record else "—"


def _count(value) -> str:
    """An epoch number; a one-seed summary.json holds it as a float (the "mean" of one)."""
    return "—" if value is None else f"{value:g}"


def _common(record) -> list[str]:
    """Cells every group shares, after its own: how the run ended."""
    return [
        _count(record.get("epochs")),
        _count(record.get("best_epoch")),
        duration(record.get("train_seconds")),
    ]


def mislabeled_table(runs: list[Run]) -> str:
    """Cross-entropy on the mislabeled set, per seed, the original's two runs on top; argmin
    columns only if some run has them (runs from before argmin decoding do not)."""
    argmin = any(r.values("test_accuracy_argmin") is not None for r in runs)
    header = ["run", "seed", "test acc (argmax)"]
    header += ["test acc (argmin)"] if argmin else []
    header += ["val acc (vs its labels)", "test acc, best params (argmax)"]
    header += ["test acc, best params (argmin)"] if argmin else []
    header += ["epochs", "best epoch", "train time"]
    rows = []
    for label, _, test, val, seconds in MISLABELED_ORIGINAL:
        original = [f"*original*, {label}", "—", _pct(test)] + ["—"] * argmin + [_pct(val), "—"]
        original += ["—"] * argmin + [str(MISLABELED_EPOCHS), "—", duration(seconds) + " (GPU)"]
        rows.append(original)

    def cells(r):
        out = [_get_pct(r, "test_accuracy")]
        out += [_get_pct(r, "test_accuracy_argmin")] if argmin else []
        out += [_get_pct(r, "val_accuracy"), _get_pct(r, "test_accuracy_best")]
        out += [_get_pct(r, "test_accuracy_best_argmin")] if argmin else []
        return out + _common(r)

    for run in runs:
        rows += _seed_rows(run, cells)
    return table(header, rows)


def complementary_table(runs: list[Run]) -> str:
    """Complementary-label runs per seed: which loss, test accuracy of last and best params."""
    header = ["run", "seed", "loss", "model", "test acc (last)", "test acc (best params)"]
    header += ["val acc (vs its wrong labels)", "epochs", "best epoch", "train time"]
    rows = []
    for run in runs:
        loss, model = loss_name(run.config), run.config["model"]
        rows += _seed_rows(
            run,
            lambda r, loss=loss, model=model: [
                loss,
                model,
                _get_pct(r, "test_accuracy"),
                _get_pct(r, "test_accuracy_best"),
                _get_pct(r, "val_accuracy"),
                *_common(r),
            ],
        )
    return table(header, rows)


def extra_specs(runs: list[Run]) -> list[str]:
    """The extra digit-sum test sets ("anywhere-4", ...) some run has, in first-seen order."""
    specs = []
    for run in runs:
        for key in run.records[0]:
            spec = key.removeprefix("test_accuracy_")
            if spec != key and not spec.startswith("best") and spec != "argmin":
                if spec not in specs:
                    specs.append(spec)
    return specs


def digitsum_table(runs: list[Run]) -> str:
    """Digit-sum runs per seed; the original's validation and training accuracy beside a
    faithful run's, and the extra test sets' columns only if some run has them."""
    specs = extra_specs(runs)
    header = ["run", "seed", "model", "test acc"] + [f"test acc, {s}" for s in specs]
    header += ["val acc", "*original* val acc", "train acc", "*original* train acc"]
    header += ["test acc (best params)", "epochs", "best epoch", "train time"]
    rows = []
    for run in runs:
        reported = originals.DIGITSUM.get(run.config.get("original"), {})
        model = DIGITSUM_NAME.get(run.config.get("original"), run.config["model"])

        def cells(r, seed, reported=reported, model=model):
            val, train = reported.get(seed, (None, None))
            return [
                model,
                _get_pct(r, "test_accuracy"),
                *[_get_pct(r, f"test_accuracy_{s}") for s in specs],
                _get_pct(r, "val_accuracy"),
                _pct(val),
                _get_pct(r, "train_accuracy"),
                _pct(train),
                _get_pct(r, "test_accuracy_best"),
                *_common(r),
            ]

        for seed, record in zip(run.seeds, run.records, strict=True):
            rows.append([run.name, str(seed), *cells(record, seed)])
    return table(header, rows)


def other_table(runs: list[Run]) -> str:
    header = ["run", "seed", "data", "test acc (MNIST test)", "val acc", "test acc (best params)"]
    header += ["epochs", "best epoch", "train time"]
    rows = []
    for run in runs:
        name = run.config["data"]["name"]
        rows += _seed_rows(
            run,
            lambda r, name=name: [
                name,
                _get_pct(r, "test_accuracy"),
                _get_pct(r, "val_accuracy"),
                _get_pct(r, "test_accuracy_best"),
                *_common(r),
            ],
        )
    return table(header, rows)


GROUP_TABLES = {
    "mislabeled": mislabeled_table,
    "complementary": complementary_table,
    "digitsum": digitsum_table,
    "other": other_table,
}


# -- the report -------------------------------------------------------------------------


def commands(runs: list[Run]) -> str:
    """A line per run: the command that made it, so that each number can be reproduced."""
    lines = []
    for run in runs:
        command = run.summary.get("command")
        how = _code(command) if command else "no command recorded (a run from before commands were)"
        version = run.summary.get("jax_version")
        lines.append(
            f"- `{run.name}` (seeds {seeds_cell(run)}"
            + (f", jax {version}" if version else "")
            + f"): {how}"
        )
    return "\n".join(lines)
