"""--config.log=tensorboard: the event files hold metrics.jsonl's numbers, per epoch and seed,
and a resumed run shows every epoch once (jaxdigits/tracking.py)."""

import json
import shutil
import struct

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


def _config(**changes):
    # test_trainer's sizes and seeds: the same compiled programs (the compilation cache)
    changes = {"seeds": (0, 10), "num_epochs": 2, "log": "tensorboard", **changes}
    return load_config("part3", **changes)


def _assert_matches_metrics(workdir, events):
    metrics = output.read_metrics(workdir)
    assert [r["epoch"] for r in metrics] == [1, 2]
    for i, seed in enumerate((0, 10)):
        for key in tracking.PER_SEED:
            expected = {r["epoch"]: r[key][i] for r in metrics}
            got = events[f"{key}/seed_{seed}"]
            assert got.keys() == expected.keys(), key
            assert all(abs(got[e] - expected[e]) < 1e-6 for e in expected), key
    assert set(events["learning_rate"]) == set(events["step_seconds"]) == {1, 2}


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


@pytest.mark.parametrize("value", ["wandb", "tensorboard,csv", "tensorbord"])
def test_an_unknown_logger_is_one_line_naming_the_key(value):
    with pytest.raises(ValueError, match=r"^config.log=.*unknown") as e:
        validate.check(_config(log=value))
    assert "\n" not in str(e.value) and "'tensorboard'" in str(e.value)
