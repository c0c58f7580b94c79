"""The finished runs the report shows: kept ones (results/runs/) and new run directories.

A run directory (written by jaxdigits.trainer) holds config.json, summary.json,
metrics.jsonl, tables.md, confusion_test.png and its checkpoints; `keep` copies all but
the checkpoints into results/runs/<name>/, which is committed, so that the report and
its figures outlive the run directory. `collect` reads every finished run under a
folder and lists the others on stderr.
"""

import dataclasses
import json
import pathlib
import shutil
import sys

from jaxdigits import defaults, output, saved_params


class ReportError(Exception):
    """A problem that stops the whole report (not one run): printed as one line."""


@dataclasses.dataclass
class Run:
    """One finished run directory: its config (with_defaults), summary.json and metric lines."""

    name: str
    path: pathlib.Path
    config: dict
    summary: dict
    metrics: list[dict]

    @property
    def records(self) -> list[dict]:
        """One summary record per seed (a one-seed summary is its seed's record)."""
        return self.summary.get("per_seed") or [self.summary]

    @property
    def seeds(self) -> list:
        return list(self.summary.get("seeds") or self.config["seeds"][: len(self.records)])

    @property
    def group(self) -> str:
        return group_of(self.config)

    def values(self, key) -> list[float] | None:
        """Per-seed values of `key`, or None where a seed lacks it (an older run)."""
        values = [r.get(key) for r in self.records]
        return None if any(v is None for v in values) else values

    def percents(self, key) -> list[float] | None:
        values = self.values(key)
        return None if values is None else [100 * v for v in values]

    def wall_seconds(self) -> float | None:
        """Seeds trained in one program each count the program's time: the max, not the sum."""
        seconds = self.values("train_seconds")
        return None if seconds is None else max(seconds)


def group_of(config: dict) -> str:
    """Which comparison a run belongs to, from what it trained on and how."""
    data = config["data"]["name"]
    if data == "mislabeled":
        # a student of a complementary run (config.teacher) learns from the wrong labels too
        learns = config["task"] == "complementary" or config.get("teacher")
        return "complementary" if learns else "mislabeled"
    return "digitsum" if data == "digitsum" else "other"


def _read_json(path: pathlib.Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"no {path.name}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path.name} is unreadable ({e})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path.name} is not a JSON object")
    return value


def load(path: pathlib.Path) -> Run:
    """A run directory as a Run; ValueError (one line) if it is not a finished, readable run."""
    summary = _read_json(path / output.SUMMARY)
    config = defaults.with_defaults(_read_json(path / output.CONFIG))
    records = summary.get("per_seed") or [summary]
    if not all(isinstance(r, dict) and "test_accuracy" in r for r in records):
        raise ValueError(f"{output.SUMMARY} has no test_accuracy")
    try:
        metrics = output.read_metrics(path)
    except (OSError, json.JSONDecodeError):
        metrics = []  # the numbers stand without it; only its learning curve is lost
    return Run(path.name, path, config, summary, metrics)


def collect(runs_dir) -> list[Run]:
    """Every finished run under `runs_dir`, by name; the others are skipped with a warning.

    A subdirectory without a summary.json (a run still training, or killed)
    or with a corrupt one is listed on stderr, so that a report is never
    silently short of a run. ReportError if `runs_dir` is not a directory.
    """
    runs_dir = pathlib.Path(runs_dir)
    if not runs_dir.is_dir():
        raise ReportError(f"{runs_dir}: no such directory (pass --runs DIR of run directories)")
    runs = []
    for path in sorted(p for p in runs_dir.iterdir() if p.is_dir()):
        try:
            runs.append(load(path))
        except ValueError as e:
            print(f"warning: skipped {path}: {e}", file=sys.stderr)
    return runs


KEPT_FILES = (output.CONFIG, output.SUMMARY, output.METRICS, output.TABLES, output.CONFUSION)


def keep(run_dir, kept_dir, params: bool = False) -> pathlib.Path:
    """Copies a finished run's small files (KEPT_FILES) into kept_dir/<its name>, replacing
    an older copy whole: a copy that fails half-way leaves the older one as it was. With
    `params`, its last and best params too (saved_params.save_params), for jaxdigits.predict."""
    run_dir = pathlib.Path(run_dir)
    try:
        load(run_dir)
    except ValueError as e:
        raise ReportError(f"{run_dir}: cannot keep it: {e}") from None
    target = pathlib.Path(kept_dir) / run_dir.resolve().name
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for name in KEPT_FILES:
        if (run_dir / name).is_file():
            shutil.copyfile(run_dir / name, staging / name)
    if params:
        try:
            saved_params.save_params(run_dir, staging)
        except (ValueError, FileNotFoundError) as e:
            shutil.rmtree(staging)
            raise ReportError(f"{run_dir}: cannot keep its params: {e}") from None
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
        staging.rename(target)
        shutil.rmtree(old)
    else:
        staging.rename(target)
    return target


def collect_all(kept_dir, runs_dir) -> list[Run]:
    """The kept runs, and the finished runs under runs_dir not kept under the same name, by
    name. A missing folder holds no runs; a run directory that a kept copy of another
    summary hides is named on stderr (keep it to show it)."""
    kept = collect(kept_dir) if pathlib.Path(kept_dir).is_dir() else []
    names = {r.name: r for r in kept}
    new = []
    if runs_dir is not None and pathlib.Path(runs_dir).is_dir():
        for run in collect(runs_dir):
            shown = names.get(run.name)
            if shown is None:
                new.append(run)
            elif shown.summary != run.summary:
                print(
                    f"note: {run.path} not shown: {shown.path} is (--keep {run.path} "
                    "to show it instead)",
                    file=sys.stderr,
                )
    return sorted(kept + new, key=lambda r: r.name)


def loss_name(config: dict) -> str:
    """The training loss, as a reader would name it."""
    if config["task"] == "regress":
        return "MSE"
    if config["task"] == "classify" and config.get("teacher"):
        return f"cross-entropy on {pathlib.PurePath(config['teacher']).name}'s answers"
    if config["task"] == "classify":
        return "cross-entropy"
    terms = config["loss"]
    name = f"{terms['complementary']} complementary loss"
    if terms.get("selftrain_threshold", 0) > 0:
        name += f" + self-training > {terms['selftrain_threshold']:g}"
        if terms.get("selftrain_view") == "strong":
            name += " of a strongly augmented view"
    return name
