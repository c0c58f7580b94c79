"""The finished run directories under a folder, read for the report.

A run directory (written by jaxdigits.trainer) holds config.json,
summary.json and metrics.jsonl; `collect` reads every finished one and
lists the others on stderr.
"""

import dataclasses
import json
import pathlib
import sys

from jaxdigits import defaults, output


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
        return "complementary" if config["task"] == "complementary" else "mislabeled"
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


def loss_name(config: dict) -> str:
    """The training loss, as a reader would name it."""
    if config["task"] == "regress":
        return "MSE"
    if config["task"] == "classify":
        return "cross-entropy"
    name = f"{config['complementary_loss']} complementary loss"
    if config.get("selftrain_threshold", 0) > 0:
        name += f" + self-training > {config['selftrain_threshold']:g}"
    return name
