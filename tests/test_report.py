"""The results report: fake run directories (made-up but well-formed numbers), no training."""

import json
import pathlib
import shutil

import pytest

from jaxdigits import defaults, output
from jaxdigits.report import build, cells, figures, headline, tables
from jaxdigits.report.runs import collect, collect_all, keep

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEVICE = "Intel(R) Xeon(R) Processor @ 2.80GHz, 2 cores"


def fake_run(runs_dir, name, config_file, per_seed, command=True, arg=None, **overrides):
    """A run directory as scoring.finish leaves it: config.json, summary.json, metrics.jsonl.

    `per_seed`: one record per seed of the config (the keys summary.json has);
    the metric lines get one entry per seed, the last seed stopping an epoch early.
    """
    config = defaults.from_file(ROOT / "configs" / config_file, arg)
    config.update(overrides)
    seeds = tuple(config.seeds)
    assert len(seeds) == len(per_seed)
    workdir = runs_dir / name
    workdir.mkdir(parents=True)
    output.write_text(workdir / output.CONFIG, config.to_json())
    summary = output.summary(seeds, per_seed)
    summary.update(device=DEVICE, jax_version="0.10.2")
    if command:
        summary["command"] = (
            f"python -m jaxdigits.train --config configs/{config_file} --workdir ckpts/{name}"
        )
    output.write_json(workdir / output.SUMMARY, summary)
    n = len(seeds)
    for epoch in (1, 2, 3):
        output.append_metrics(
            workdir,
            {
                "epoch": epoch,
                "seconds": 10.0,
                "loss": [2.0 / epoch] * n,
                "accuracy": [0.1 * epoch] * n,
                "val_loss": [2.5 / epoch + 0.01 * i for i in range(n)],
                "val_accuracy": [0.2 * epoch] * n,
                "active": [epoch < 3 or i < n - 1 for i in range(n)],
            },
        )
    (workdir / output.CONFUSION).write_bytes(b"\x89PNG fake")
    return workdir


def record(test, val=0.5, seconds=100.0, **extra):
    return {
        "test_accuracy": test,
        "val_accuracy": val,
        "epochs": 3,
        "train_seconds": seconds,
        "test_accuracy_best": test + 0.001,
        "val_accuracy_best": val,
        "val_loss_best": 1.0,
        "best_epoch": 2,
        **extra,
    }


@pytest.fixture
def runs_dir(tmp_path):
    """A faithful Part 3 (one seed, argmin), a complementary CNN and a digit-sum regressor
    (three seeds each), and a digit-sum columns run with extra test sets (one seed)."""
    d = tmp_path / "ckpts"
    fake_run(
        d,
        "part3",
        "part3.py",
        [record(0.0011, 0.1142, 905.2, test_accuracy_argmin=0.8123, test_accuracy_best_argmin=0.8)],
    )
    fake_run(
        d,
        "part3_complementary_cnn",
        "part3_complementary_cnn.py",
        [
            record(0.9912, 0.0, 600.0, test_accuracy_shifts=0.992),
            record(0.9904, 0.002, 610.0, test_accuracy_shifts=0.991),
            record(0.9921, 0.0, 620.0, test_accuracy_shifts=0.993),
        ],
    )
    fake_run(
        d,
        "digitsum_regressor",
        "digitsum_regressor.py",
        [
            record(0.1324, 0.1275, 3224.0, train_accuracy=0.3974),
            record(0.1238, 0.1230, 3000.0, train_accuracy=0.4166),
            record(0.1217, 0.1215, 2900.0, train_accuracy=0.2618),
        ],
    )
    anywhere = {
        "test_accuracy_anywhere-4": 0.91,
        "test_accuracy_best_anywhere-4": 0.9,
        "test_accuracy_anywhere-3": 0.95,
        "test_accuracy_best_anywhere-3": 0.94,
        "test_accuracy_anywhere-5": 0.87,
        "test_accuracy_best_anywhere-5": 0.86,
        "digit_accuracy": 0.98,  # single digits read (columns read none; a table test only)
        "digit_accuracy_best": 0.97,
    }
    fake_run(d, "digitsum_columns", "digitsum_columns.py", [record(0.93, **anywhere)], seeds=(0,))
    return d


def rows_of(text, first_cell):
    """The table rows of `text` whose first cell is `first_cell`."""
    return [ln for ln in text.splitlines() if ln.startswith(f"| {first_cell} |")]


def test_collect_reads_every_finished_run(runs_dir):
    runs = collect(runs_dir)
    assert [r.name for r in runs] == [
        "digitsum_columns",
        "digitsum_regressor",
        "part3",
        "part3_complementary_cnn",
    ]
    by_name = {r.name: r for r in runs}
    assert by_name["part3"].group == "mislabeled" and by_name["part3"].seeds == [0]
    assert by_name["part3_complementary_cnn"].group == "complementary"
    assert by_name["digitsum_regressor"].seeds == [0, 10, 42]
    # seeds in one program each count the program's time: the run's is the max
    assert by_name["digitsum_regressor"].wall_seconds() == 3224.0
    assert len(by_name["digitsum_regressor"].metrics) == 3


def test_cells():
    assert cells.percent_cell([99.12]) == "99.12 %"
    assert cells.percent_cell([13.24, 12.38, 12.17]) == "12.60 % (13.24 / 12.38 / 12.17)"
    assert cells.percent_cell(None) == "—"
    assert cells.duration(42.4) == "42 s"
    assert cells.duration(3224) == "53 min 44 s"
    assert cells.duration(2 * 3600 + 125) == "2 h 2 min"
    assert cells.duration(None) == "—"


def test_headline_rows(runs_dir):
    text = headline.headline(collect(runs_dir))
    # the originals, from ORIGINAL_EXPERIMENTS.md and originals.DIGITSUM
    assert "| Mislabeled MNIST | *original*, scratch | — | — | 0.20 % | 11.55 % |" in text
    assert "6 min 57 s" in text
    assert "| *original* CNN regressor | — | — | — | 11.00 % (11.42 / 10.92 / 10.65) |" in text
    # ours: one seed, then the argmin decoding of the same params
    (argmax,) = [ln for ln in rows_of(text, "Mislabeled MNIST") if "(argmax)" in ln]
    assert "| part3 | `configs/part3.py` | 0.11 % | 11.42 % | 0 |" in argmax
    assert f"| {DEVICE} | 15 min 5 s |" in argmax
    (argmin,) = [ln for ln in rows_of(text, "Mislabeled MNIST") if "argmin decoding" in ln]
    assert "| 81.23 % | — |" in argmin
    # three seeds: the mean and each seed's value
    (cnn,) = [ln for ln in text.splitlines() if "| part3_complementary_cnn |" in ln]
    assert "99.12 % (99.12 / 99.04 / 99.21); 99.20 % over 9 shifts |" in cnn  # one row
    assert "| 0, 10, 42 |" in cnn
    assert (
        "forward complementary loss + self-training > 0.95, mnist_cnn" in cnn
        and "10 min 20 s" in cnn
    )
    (regressor,) = [ln for ln in text.splitlines() if "| digitsum_regressor |" in ln]
    assert "ours, faithful CNN regressor" in regressor
    assert "12.60 % (13.24 / 12.38 / 12.17)" in regressor and "53 min 44 s" in regressor
    # originals with no reproduction here are listed, not dropped
    not_run = [ln for ln in text.splitlines() if "| not run |" in ln]
    assert len(not_run) == 2  # Part 3 from Part 1, the CNN classifier
    assert any("configs/part3.py:pretrained" in ln for ln in not_run)
    assert any("configs/digitsum_classifier.py" in ln for ln in not_run)
    # the VGG regressor cannot run without ImageNet weights: its row says so
    (vgg,) = [ln for ln in text.splitlines() if "| ours, faithful VGG regressor |" in ln]
    assert "| needs the ImageNet VGG11 weights |" in vgg and "--config.vgg_weights=" in vgg
    # a new digit-sum network: its headline row, then one row of every test set it was
    # scored on, "—" for the others
    headline_row, harder_row = [ln for ln in text.splitlines() if "| digitsum_columns |" in ln]
    assert headline_row.split(" | ")[4] == "93.00 %"
    assert harder_row.startswith("| ours, new: sum_columns")
    cells = harder_row.strip("| ").split(" | ")[2:]
    assert cells == ["93.00 %", "91.00 %", "—", "—", "95.00 %", "87.00 %", "98.00 %"]


def test_config_cell_falls_back_to_the_config_without_a_command(tmp_path):
    fake_run(tmp_path, "old", "part3.py", [record(0.002)], command=False)
    (run,) = collect(tmp_path)
    assert cells.config_cell(run) == "five_conv, classify, mislabeled (no command recorded)"
    assert "no command recorded" in tables.commands([run])
    run.summary["command"] = (
        "python -m jaxdigits.train --config=configs/part2.py --workdir=x --config.num_epochs=6"
    )
    assert cells.config_cell(run) == "`configs/part2.py --config.num_epochs=6`"


def test_group_tables_show_optional_columns_only_when_present(runs_dir, tmp_path):
    runs = collect(runs_dir)
    groups = {g: [r for r in runs if r.group == g] for g in tables.GROUPS}
    mislabeled = tables.mislabeled_table(groups["mislabeled"])
    assert "test acc (argmin)" in mislabeled
    (row,) = rows_of(mislabeled, "part3")
    assert row.startswith("| part3 | 0 | 0.11 % | 81.23 % | 11.42 % | 0.21 % | 80.00 % | 3 | 2 |")
    assert "| *original*, scratch | — | 0.20 % | — | 11.55 % |" in mislabeled

    complementary = tables.complementary_table(groups["complementary"])
    seeds = rows_of(complementary, "part3_complementary_cnn")
    assert [ln.split(" | ")[1] for ln in seeds] == ["0", "10", "42"]
    assert "| 99.04 % | 99.14 % |" in seeds[1]  # last and best params of seed 10
    # 0.2 % of predictions are the wrong validation label: 9 x 0.2 % = 1.8 % error estimated
    assert "| 0.20 % | 98.20 % |" in seeds[1] and "| 0.00 % | 100.00 % |" in seeds[0]

    digitsum = tables.digitsum_table(groups["digitsum"])
    for spec in ("anywhere-4", "anywhere-3", "anywhere-5"):
        assert f"test acc, {spec}" in digitsum
    (columns,) = rows_of(digitsum, "digitsum_columns")
    assert "| 93.00 % | 91.00 % | 95.00 % | 87.00 % | 98.00 % |" in columns
    assert "| digit acc |" in digitsum
    regressor = rows_of(digitsum, "digitsum_regressor")
    assert "| 12.75 % | 11.42 % | 39.74 % | 21.90 % |" in regressor[0]  # ours beside theirs
    assert "| 12.15 % | 10.65 % | 26.18 % | 18.16 % |" in regressor[2]

    # an older Part 3 run without argmin, and digit sums without extra tests: no such columns
    old = tmp_path / "old"
    fake_run(old, "part3", "part3.py", [record(0.002)])
    fake_run(old, "digitsum_classifier", "digitsum_classifier.py", [record(0.1)] * 3)
    old_runs = collect(old)
    assert "argmin" not in tables.mislabeled_table([old_runs[1]])
    assert "anywhere" not in tables.digitsum_table([old_runs[0]])
    assert "digit acc" not in tables.digitsum_table([old_runs[0]])
    assert "argmin" not in headline.headline(old_runs)


def test_write_report_with_figures(runs_dir, tmp_path):
    out = tmp_path / "results" / "REPORT.md"
    build.main(
        ["--kept", str(tmp_path / "kept"), "--runs", str(runs_dir), "--out", str(out)]
        + ["--readme", ""]
    )
    text = out.read_text()
    figures = out.parent / build.FIGURES
    for group in ("mislabeled", "complementary", "digitsum"):
        png = figures / f"curves_{group}.png"
        assert png.read_bytes()[:4] == b"\x89PNG"
        assert f"](figures/curves_{group}.png)" in text
    assert not (figures / "curves_other.png").exists()  # no such runs
    # curves of runs no longer shown go with them
    shutil.rmtree(runs_dir / "part3")
    build.main(
        ["--kept", str(tmp_path / "kept"), "--runs", str(runs_dir), "--out", str(out)]
        + ["--readme", ""]
    )
    assert not (figures / "curves_mislabeled.png").exists()
    assert (figures / "curves_digitsum.png").exists()
    # each run's confusion matrix, linked relatively where it is
    assert "[part3](../ckpts/part3/confusion_test.png)" in text
    assert not list(figures.glob("confusion_*"))
    # a command line per run
    assert (
        "- `digitsum_regressor` (seeds 0, 10, 42, jax 0.10.2): `python -m jaxdigits.train "
        "--config configs/digitsum_regressor.py --workdir ckpts/digitsum_regressor`"
    ) in text
    assert text.index("## Headline") < text.index("## Digit sums") < text.index("## Commands")


def test_curves_follow_each_seeds_active_epochs(runs_dir):
    (run,) = [r for r in collect(runs_dir) if r.name == "digitsum_regressor"]
    losses = figures.curves(run, "val_loss")
    assert [epochs for epochs, _ in losses] == [[1, 2, 3], [1, 2, 3], [1, 2]]
    assert losses[1][1] == pytest.approx([2.51, 1.26, 2.5 / 3 + 0.01])


def test_corrupt_or_unfinished_runs_are_skipped_with_a_warning(runs_dir, tmp_path, capsys):
    (runs_dir / "part3" / output.SUMMARY).write_text('{"test_accuracy": 0.1,')  # cut short
    shutil.copytree(runs_dir / "digitsum_columns", runs_dir / "training")
    (runs_dir / "training" / output.SUMMARY).unlink()  # still training
    (runs_dir / "notes.txt").write_text("not a run")
    out = tmp_path / "REPORT.md"
    build.main(
        ["--kept", str(tmp_path / "kept"), "--runs", str(runs_dir), "--out", str(out)]
        + ["--readme", ""]
    )
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2
    assert err[0].startswith(f"warning: skipped {runs_dir / 'part3'}: summary.json is unreadable")
    assert err[1] == f"warning: skipped {runs_dir / 'training'}: no summary.json"
    text = out.read_text()
    assert "| part3 |" not in text and "digitsum_columns" in text


def test_no_runs_still_gives_the_originals(tmp_path):
    (tmp_path / "ckpts").mkdir()
    text = build.render(collect(tmp_path / "ckpts"), tmp_path)
    assert "*original*, scratch" in text and "No finished runs were found." in text


@pytest.mark.slow
def test_kept_runs_outlive_their_run_directories(runs_dir, tmp_path, capsys):
    """--keep copies a run's small files (no checkpoints) into --kept; the report built from
    the kept copies alone is the report of the run directories, and --check says so."""
    (runs_dir / "part3" / "checkpoints").mkdir()
    (runs_dir / "part3" / "checkpoints" / "state").write_bytes(b"big")
    kept, out, readme = (
        tmp_path / "results" / "runs",
        tmp_path / "results" / "R.md",
        tmp_path / "README.md",
    )
    readme.write_text(f"# x\n\n{build.README_BEGIN}\nold table\n{build.README_END}\n\nafter\n")
    args = ["--kept", str(kept), "--out", str(out), "--readme", str(readme)]
    build.main([*args, "--runs", str(runs_dir)])
    direct, direct_readme = out.read_text(), readme.read_text()
    assert "old table" not in direct_readme and direct_readme.endswith("\nafter\n")
    assert headline.headline(collect(runs_dir)) + "\n" in direct_readme

    keep_args = [a for d in sorted(runs_dir.iterdir()) if d.is_dir() for a in ("--keep", str(d))]
    build.main([*args, "--runs", str(tmp_path / "none"), *keep_args])
    assert sorted(p.name for p in kept.iterdir()) == sorted(p.name for p in runs_dir.iterdir())
    assert sorted(p.name for p in (kept / "part3").iterdir()) == [
        output.CONFIG,
        output.CONFUSION,
        output.METRICS,
        output.SUMMARY,
    ]
    text = out.read_text()
    assert text == direct.replace("../ckpts/", "runs/")  # the figures link to the kept copies
    assert readme.read_text() == direct_readme
    capsys.readouterr()
    build.main([*args, "--runs", str(tmp_path / "none"), "--check"])
    assert capsys.readouterr().out.startswith("up to date")

    # a run directory with another summary under a kept name is not shown, and named
    summary = json.loads((runs_dir / "part3" / output.SUMMARY).read_text())
    summary["test_accuracy"] = 0.5
    (runs_dir / "part3" / output.SUMMARY).write_text(json.dumps(summary))
    shown = collect_all(kept, runs_dir)
    assert [r.path for r in shown if r.name == "part3"] == [kept / "part3"]
    assert "--keep" in capsys.readouterr().err
    # a stale README or report: --check fails with one line and writes nothing
    readme.write_text(readme.read_text().replace("0.11 %", "0.12 %"))
    before = readme.read_text()
    with pytest.raises(SystemExit) as exc:
        build.main([*args, "--runs", str(tmp_path / "none"), "--check"])
    assert exc.value.code == f"error: {readme} out of date: run python -m jaxdigits.report"
    assert readme.read_text() == before


def test_keep_refuses_an_unfinished_run_and_leaves_the_old_copy(runs_dir, tmp_path):
    kept = tmp_path / "kept"
    keep(runs_dir / "part3", kept)
    (runs_dir / "part3" / output.SUMMARY).unlink()
    with pytest.raises(build.ReportError, match="part3: cannot keep it: no summary.json"):
        keep(runs_dir / "part3", kept)
    assert (kept / "part3" / output.SUMMARY).is_file()


def test_readme_without_the_headline_block_is_one_line_error(runs_dir, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# a readme with no table\n")
    args = ["--kept", str(tmp_path / "kept"), "--runs", str(runs_dir)]
    args += ["--out", str(tmp_path / "R.md"), "--readme", str(readme)]
    with pytest.raises(SystemExit) as exc:
        build.main(args)
    assert exc.value.code.startswith(f"error: {readme}: no headline block")
    assert readme.read_text() == "# a readme with no table\n"
    assert not (tmp_path / "R.md").exists()
    with pytest.raises(SystemExit) as exc:
        build.main(args[:-1] + [str(tmp_path / "missing.md")])
    assert exc.value.code.startswith(f"error: {tmp_path / 'missing.md'}: no such file")


def test_committed_report_and_readme_are_current():
    """results/REPORT.md and README.md's headline are what the kept runs give today."""
    texts, _ = build.build(
        ROOT / "results" / "runs", None, ROOT / "results" / "REPORT.md", ROOT / "README.md"
    )
    for path, text in texts.items():
        assert path.read_text() == text, f"{path} is stale: run python -m jaxdigits.report"
