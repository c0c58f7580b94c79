"""--config.log=tensorboard and wandb: the event files and the offline W&B run hold
metrics.jsonl's numbers, per epoch and seed, and a resumed run shows every epoch once
(jaxdigits/tracking.py)."""

import json
import shutil
import struct
import sys

import pytest
from helpers_data import NEEDS_MNIST
from test_trainer import load_config

from jaxdigits import output, tracking, trainer
from jaxdigits.runtime import validate

event_pb2 = pytest.importorskip(
    "tensorboardX.proto.event_pb2", reason="the tensorboard extra (pip install -e .[dev])"
)


def read_events(workdir) -> dict[str, dict[int, float]]:
    """tag -> step -> value, as TensorBoard shows them: the event files in the order they were
    written, a session START at step s discarding what earlier files had from step s on.
    Fails if a tag has two values at one step after that (a duplicated epoch)."""
    scalars, texts = {}, []
    for path in sorted((workdir / tracking.DIR).glob("events.out.tfevents.*")):
        data = path.read_bytes()
        at = 0
        while at < len(data):  # TFRecord: length, its crc, the record, its crc
            (n,) = struct.unpack("<Q", data[at : at + 8])
            event = event_pb2.Event.FromString(data[at + 12 : at + 12 + n])
            at += 12 + n + 4
            if event.HasField("session_log") and event.session_log.status == 1:  # START
                for steps in scalars.values():
                    for step in [s for s in steps if s >= event.step]:
                        del steps[step]
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    steps = scalars.setdefault(value.tag, {})
                    assert event.step not in steps, f"{value.tag} twice at step {event.step}"
                    steps[event.step] = value.simple_value
                elif value.metadata.plugin_data.plugin_name == "text":
                    texts.append(value.tag)
    scalars["_texts"] = texts
    return scalars


BLOCK = 32 * 1024  # a .wandb file: LevelDB's log format, in blocks of 32 KiB


def _wandb_records(path):
    """The Records of one .wandb file (W&B's transaction log). Its Python reader is gone from
    wandb, so this reads the format: a 7-byte header (":W&B", magic, version), then chunks of
    (crc32c, length, type) and data, never across a 32 KiB block (the rest of one that cannot
    hold a chunk's header is padding); a record is a FULL chunk (1) or FIRST (2), MIDDLE (3),
    LAST (4). The crc is not checked; a record that fails to parse fails the test."""
    pb = pytest.importorskip("wandb.proto.wandb_internal_pb2", reason="the wandb extra")
    data = path.read_bytes()
    assert data[:4] == b":W&B", path
    at, parts, records = 7, [], []
    while at + 7 <= len(data):
        if BLOCK - at % BLOCK < 7:
            at += BLOCK - at % BLOCK
            continue
        _, n, kind = struct.unpack("<IHB", data[at : at + 7])
        if kind == 0:  # zeros: the rest of the block was never written
            at += BLOCK - at % BLOCK
            continue
        parts.append(data[at + 7 : at + 7 + n])
        at += 7 + n
        if kind in (1, 4):
            records.append(pb.Record.FromString(b"".join(parts)))
            parts = []
    assert not parts, f"{path}: a record cut short"
    return records


def _key(item) -> str:
    return item.key or ".".join(item.nested_key)


def read_wandb(workdir) -> list[dict]:
    """Each offline run in RUN_DIR/wandb, oldest first: its id, config, history (step ->
    {key: value}, wandb's own keys such as _runtime left out) and final summary."""
    runs = []
    for run_dir in sorted((workdir / tracking.WANDB_DIR).glob("offline-run-*")):
        (path,) = run_dir.glob("*.wandb")
        run = {"dir": run_dir.name, "config": {}, "history": {}, "summary": {}, "exit": None}
        for record in _wandb_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run["id"] = record.run.run_id
                run["project"] = record.run.project
                run["name"] = record.run.display_name
                for item in record.run.config.update:
                    run["config"][_key(item)] = json.loads(item.value_json)
            elif kind == "history":
                row = {_key(i): json.loads(i.value_json) for i in record.history.item}
                step = row.pop("_step")
                assert step not in run["history"], f"{run_dir.name}: step {step} twice"
                run["history"][step] = {k: v for k, v in row.items() if not k.startswith("_")}
            elif kind == "summary":
                for item in record.summary.update:
                    run["summary"][_key(item)] = json.loads(item.value_json)
                for item in record.summary.remove:
                    run["summary"].pop(_key(item), None)
            elif kind == "exit":
                run["exit"] = record.exit.exit_code
        runs.append(run)
    return runs


def _history(runs) -> dict[int, dict]:
    """The epochs' rows over every offline run; fails on an epoch logged twice."""
    rows = {}
    for run in runs:
        for step, row in run["history"].items():
            assert step not in rows, f"epoch {step} logged again in {run['dir']}"
            rows[step] = row
    return rows


@pytest.fixture
def offline_wandb(monkeypatch, tmp_path):
    """No network: offline, quiet, no API key, W&B's own folders in tmp_path."""
    pytest.importorskip("wandb", reason="the wandb extra (pip install -e .[dev])")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb_home" / var.lower()))


def _config(**changes):
    # test_trainer's sizes and seeds: the same compiled programs (the compilation cache)
    changes = {"seeds": (0, 10), "num_epochs": 2, "log": "tensorboard", **changes}
    return load_config("part3", **changes)


def _assert_matches_metrics(workdir, events, epochs=(1, 2)):
    metrics = output.read_metrics(workdir)
    assert [r["epoch"] for r in metrics] == list(epochs)
    for i, seed in enumerate((0, 10)):
        for key in tracking.PER_SEED:
            expected = {r["epoch"]: r[key][i] for r in metrics}
            got = events[f"{key}/seed_{seed}"]
            assert got.keys() == expected.keys(), key
            assert all(abs(got[e] - expected[e]) < 1e-6 for e in expected), key
    assert set(events["learning_rate"]) == set(events["step_seconds"]) == set(epochs)


def _by_tag(rows: dict[int, dict]) -> dict[str, dict[int, float]]:
    """W&B's rows (epoch -> tag -> value) as read_events gives them (tag -> epoch -> value)."""
    tags = {}
    for step, row in rows.items():
        for tag, value in row.items():
            tags.setdefault(tag, {})[step] = value
    return tags


@pytest.mark.slow
@NEEDS_MNIST
def test_event_files_hold_the_metrics_and_a_resumed_run_each_epoch_once(tmp_path):
    workdir = tmp_path / "run"
    summary = trainer.train_and_evaluate(_config(), workdir)
    events = read_events(workdir)
    _assert_matches_metrics(workdir, events)
    assert events["learning_rate"] == {1: pytest.approx(1e-3), 2: pytest.approx(1e-3)}
    for i, seed in enumerate((0, 10)):
        test = events[f"test_accuracy/seed_{seed}"]
        assert test == {2: pytest.approx(summary["per_seed"][i]["test_accuracy"])}
    assert events["_texts"] == ["summary/text_summary"]  # tensorboardX's tag for add_text

    # Killed before epoch 2's checkpoint: the run resumes after epoch 1 and trains epoch 2
    # again; TensorBoard shows the new epoch 2 only.
    shutil.rmtree(workdir / "checkpoints" / "2")
    before = read_events(workdir)["loss/seed_0"][2]
    trainer.train_and_evaluate(_config(), workdir)
    assert len(list((workdir / tracking.DIR).glob("events.out.tfevents.*"))) == 2
    events = read_events(workdir)
    _assert_matches_metrics(workdir, events)
    assert events["loss/seed_0"][2] == pytest.approx(before)  # the same epoch, once

    # Extended by an epoch, logging turned off: nothing more is written.
    trainer.train_and_evaluate(_config(num_epochs=3, log=""), workdir)
    assert set(read_events(workdir)["loss/seed_0"]) == {1, 2}


@pytest.mark.slow
@NEEDS_MNIST
def test_no_log_no_event_files_and_logging_can_start_on_resume(tmp_path):
    trainer.train_and_evaluate(_config(num_epochs=1, log=""), tmp_path)
    assert not (tmp_path / tracking.DIR).exists()
    trainer.train_and_evaluate(_config(), tmp_path)  # resumed with the log on
    assert set(read_events(tmp_path)["loss/seed_0"]) == {2}
    assert json.loads((tmp_path / "config.json").read_text())["log"] == "tensorboard"


@pytest.mark.slow
@NEEDS_MNIST
def test_the_wandb_run_holds_the_metrics_and_a_resumed_run_each_epoch_once(tmp_path, offline_wandb):
    workdir = tmp_path / "run"
    summary = trainer.train_and_evaluate(_config(log="tensorboard,wandb"), workdir)
    _assert_matches_metrics(workdir, read_events(workdir))  # both loggers, side by side
    (run,) = read_wandb(workdir)
    assert (run["project"], run["name"], run["exit"]) == ("jaxdigits", "run", 0)
    assert run["config"]["log"] == "tensorboard,wandb" and run["config"]["seeds"] == [0, 10]
    assert run["config"]["num_epochs"] == 2 and run["config"]["data"]["limit"] == 200
    tags = _by_tag(_history([run]))
    _assert_matches_metrics(workdir, tags)
    assert tags["learning_rate"] == {1: pytest.approx(1e-3), 2: pytest.approx(1e-3)}
    for i, seed in enumerate((0, 10)):
        test = summary["per_seed"][i]["test_accuracy"]
        assert run["summary"][f"test_accuracy/seed_{seed}"] == pytest.approx(test)
    for key in ("test_accuracy", "val_accuracy_best", "per_seed", "seeds", "jax_version"):
        assert run["summary"][key] == summary[key], key
    state = json.loads((workdir / tracking.WANDB_DIR / tracking.WANDB_STATE).read_text())
    assert state == {"id": run["id"], "logged_through": 2}

    # Killed after logging epoch 2 but before its checkpoint: the run resumes after epoch 1,
    # trains epoch 2 again and continues the same W&B run without logging epoch 2 again.
    shutil.rmtree(workdir / "checkpoints" / "2")
    before = tags["loss/seed_0"][2]
    trainer.train_and_evaluate(_config(log="wandb"), workdir)
    runs = read_wandb(workdir)
    assert len(runs) == 2 and {r["id"] for r in runs} == {run["id"]}
    assert runs[1]["history"] == {}  # epoch 2 was in W&B already
    assert output.read_metrics(workdir)[1]["loss"][0] == pytest.approx(before)  # the same
    _assert_matches_metrics(workdir, _by_tag(_history(runs)))

    # Extended by an epoch: the third offline run of the id holds epoch 3 alone.
    summary = trainer.train_and_evaluate(_config(num_epochs=3, log="wandb"), workdir)
    runs = read_wandb(workdir)
    assert len(runs) == 3 and {r["id"] for r in runs} == {run["id"]}
    assert set(runs[2]["history"]) == {3}
    _assert_matches_metrics(workdir, _by_tag(_history(runs)), epochs=(1, 2, 3))
    assert runs[2]["config"]["num_epochs"] == 3
    assert runs[2]["summary"]["test_accuracy"] == pytest.approx(summary["test_accuracy"])
    state = json.loads((workdir / tracking.WANDB_DIR / tracking.WANDB_STATE).read_text())
    assert state == {"id": run["id"], "logged_through": 3}


def test_wandb_missing_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` raises ImportError
    config = _config(log="tensorboard,wandb")
    with pytest.raises(ImportError) as e:  # before either writer starts
        tracking.Tracker(config, tmp_path, 0, 1e-3, 5)
    assert str(e.value) == "config.log='wandb' needs wandb: pip install -e '.[wandb]'"
    tracking.Tracker(config, tmp_path, 0, 1e-3, 5, writer=False).close()  # not imported there
    assert list(tmp_path.iterdir()) == []  # no tensorboard/, no wandb/


@pytest.mark.parametrize(
    "env, mode",
    [
        ({}, "offline"),
        ({"WANDB_API_KEY": "x" * 40}, "online"),
        ({"WANDB_API_KEY": "x" * 40, "WANDB_MODE": "offline"}, "offline"),
        ({"WANDB_MODE": "disabled"}, "disabled"),
    ],
)
def test_wandb_is_offline_without_an_api_key_and_wandb_mode_decides(monkeypatch, env, mode):
    for var in ("WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    assert tracking.wandb_mode() == mode


@pytest.mark.parametrize(
    "value, unknown",
    [("mlflow", "'mlflow'"), ("tensorboard,csv", "'csv'"), ("wandb,tensorbord", "'tensorbord'")],
)
def test_an_unknown_logger_is_one_line_naming_the_key(value, unknown):
    with pytest.raises(ValueError, match=r"^config.log=.*unknown") as e:
        validate.check(_config(log=value))
    message = str(e.value)
    assert "\n" not in message and f"unknown {unknown};" in message
    assert "list of 'tensorboard', 'wandb'," in message  # the names it takes


def test_both_loggers_are_known():
    assert tracking.names("tensorboard, wandb") == ("tensorboard", "wandb")
    validate.check(_config(log="tensorboard,wandb"))
