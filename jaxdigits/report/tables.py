"""The report's per-group tables: one row per seed, the originals' numbers beside ours
where they reported any, and the commands that made the runs."""

from jaxdigits import losses
from jaxdigits.report import cells, originals
from jaxdigits.report.runs import Run, loss_name

GROUPS = {  # section order of the report
    "mislabeled": "Mislabeled MNIST, cross-entropy on the wrong labels (the original's Part 3)",
    "complementary": "Mislabeled MNIST, the wrong labels read as complementary labels (new)",
    "digitsum": "Digit sums",
    "other": "Other runs (Parts 1 and 2; the originals reported no numbers)",
}


def _seed_rows(run: Run, cells_of) -> list[list[str]]:
    """One row per seed: `cells_of(record)` gives the cells after run and seed."""
    return [
        [run.name, str(seed), *cells_of(record)]
        for seed, record in zip(run.seeds, run.records, strict=True)
    ]


def _get_pct(record, key) -> str:
    return cells.pct(100 * record[key]) if key in record else "—"


def _count(value) -> str:
    """An epoch number; a one-seed summary.json holds it as a float (the "mean" of one)."""
    return "—" if value is None else f"{value:g}"


def _common(record) -> list[str]:
    """Cells every group shares, after its own: how the run ended."""
    return [
        _count(record.get("epochs")),
        _count(record.get("best_epoch")),
        cells.duration(record.get("train_seconds")),
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
    for label, _, test, val, seconds in originals.MISLABELED:
        original = (
            [f"*original*, {label}", "—", cells.pct(test)] + ["—"] * argmin + [cells.pct(val), "—"]
        )
        original += ["—"] * argmin + [
            str(originals.MISLABELED_EPOCHS),
            "—",
            cells.duration(seconds) + " (GPU)",
        ]
        rows.append(original)

    def seed_cells(r):
        out = [_get_pct(r, "test_accuracy")]
        out += [_get_pct(r, "test_accuracy_argmin")] if argmin else []
        out += [_get_pct(r, "val_accuracy"), _get_pct(r, "test_accuracy_best")]
        out += [_get_pct(r, "test_accuracy_best_argmin")] if argmin else []
        return out + _common(r)

    for run in runs:
        rows += _seed_rows(run, seed_cells)
    return cells.table(header, rows)


def estimated_accuracy(val_accuracy: float, num_classes: int) -> float:
    """Test accuracy estimated without a true label: with one uniform complementary label per
    image, a wrong prediction hits it with probability 1 / (K - 1) and a right one never, so
    the error is (K - 1) times the rate of predicting the (wrong) validation label."""
    return 1.0 - (num_classes - 1) * val_accuracy


def complementary_table(runs: list[Run]) -> str:
    """Complementary-label runs per seed: which loss, test accuracy of last and best params,
    and the last params' test accuracy as estimated from the wrong validation labels alone."""
    shifts = any(r.values("test_accuracy_shifts") is not None for r in runs)
    header = ["run", "seed", "loss", "model", "test acc (last)", "test acc (best params)"]
    header += ["test acc, 9 shifted views (last)"] if shifts else []
    header += ["val acc (vs its wrong labels)", "test acc estimated from val (last)"]
    header += ["epochs", "best epoch", "train time"]
    rows = []
    for run in runs:
        loss, model = loss_name(run.config), run.config["model"]
        k = run.config.get("num_classes", 10)
        rows += _seed_rows(
            run,
            lambda r, loss=loss, model=model, k=k: [
                loss,
                model,
                _get_pct(r, "test_accuracy"),
                _get_pct(r, "test_accuracy_best"),
                *([_get_pct(r, "test_accuracy_shifts")] if shifts else []),
                _get_pct(r, "val_accuracy"),
                cells.pct(100 * estimated_accuracy(r["val_accuracy"], k)),
                *_common(r),
            ],
        )
    return cells.table(header, rows)


def extra_specs(runs: list[Run]) -> list[str]:
    """The extra digit-sum test sets ("anywhere-4", ...) some run has, in first-seen order."""
    specs = []
    for run in runs:
        for key in run.records[0]:
            spec = key.removeprefix("test_accuracy_")
            if spec != key and not spec.startswith("best") and spec not in losses.DECODES:
                if spec not in specs:
                    specs.append(spec)
    return specs


def digitsum_table(runs: list[Run]) -> str:
    """Digit-sum runs per seed; the original's validation and training accuracy beside a
    faithful run's, and the extra test sets' columns only if some run has them."""
    specs = extra_specs(runs)
    digits = any("digit_accuracy" in run.records[0] for run in runs)  # networks that read digits
    header = ["run", "seed", "model", "test acc"] + [f"test acc, {s}" for s in specs]
    header += ["digit acc"] if digits else []
    header += ["val acc", "*original* val acc", "train acc", "*original* train acc"]
    header += ["test acc (best params)", "epochs", "best epoch", "train time"]
    rows = []
    for run in runs:
        reported = originals.DIGITSUM.get(run.config.get("original"), {})
        model = originals.DIGITSUM_NAME.get(run.config.get("original"), run.config["model"])

        def seed_cells(r, seed, reported=reported, model=model):
            val, train = reported.get(seed, (None, None))
            return [
                model,
                _get_pct(r, "test_accuracy"),
                *[_get_pct(r, f"test_accuracy_{s}") for s in specs],
                *([_get_pct(r, "digit_accuracy")] if digits else []),
                _get_pct(r, "val_accuracy"),
                cells.pct(val),
                _get_pct(r, "train_accuracy"),
                cells.pct(train),
                _get_pct(r, "test_accuracy_best"),
                *_common(r),
            ]

        for seed, record in zip(run.seeds, run.records, strict=True):
            rows.append([run.name, str(seed), *seed_cells(record, seed)])
    return cells.table(header, rows)


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
    return cells.table(header, rows)


GROUP_TABLES = {
    "mislabeled": mislabeled_table,
    "complementary": complementary_table,
    "digitsum": digitsum_table,
    "other": other_table,
}


def commands(runs: list[Run]) -> str:
    """A line per run: the command that made it, so that each number can be reproduced."""
    lines = []
    for run in runs:
        command = run.summary.get("command")
        how = (
            cells.code(command)
            if command
            else "no command recorded (a run from before commands were)"
        )
        version = run.summary.get("jax_version")
        lines.append(
            f"- `{run.name}` (seeds {cells.seeds_cell(run)}"
            + (f", jax {version}" if version else "")
            + f"): {how}"
        )
    return "\n".join(lines)
