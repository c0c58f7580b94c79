"""Experiment tracking beside metrics.jsonl: `--config.log=tensorboard`.

TensorBoard event files go to RUN_DIR/tensorboard (through tensorboardX, the `tensorboard`
extra), per epoch and per seed: train and validation loss and accuracy under
`<metric>/seed_<seed>`, the learning rate at the epoch's end and the mean step time; at the
end the test accuracies and the summary as text. Open them with
`tensorboard --logdir RUN_DIR/tensorboard` (TensorBoard itself is not a dependency).

A resumed run appends: its writer purges the events from the epoch it resumes at on (those
of an epoch whose checkpoint a killed run never wrote), so TensorBoard shows every epoch once.
"""

import json
import pathlib

LOGGERS = ("tensorboard",)
DIR = "tensorboard"
PER_SEED = ("loss", "accuracy", "val_loss", "val_accuracy")


def names(value: str) -> tuple[str, ...]:
    """config.log ("", "tensorboard", ...) as names; ValueError naming the key if unknown."""
    given = tuple(n.strip() for n in value.split(",") if n.strip())
    unknown = [n for n in given if n not in LOGGERS]
    if unknown:
        raise ValueError(
            f"config.log={value!r}: unknown {', '.join(map(repr, unknown))}; "
            f"use a comma-separated list of {', '.join(map(repr, LOGGERS))}, or '' for none"
        )
    return given


class Tracker:
    """The writers config.log asks for; with none, every call does nothing."""

    def __init__(
        self, config, workdir, start_epoch: int, learning_rate, steps_per_epoch: int, writer=True
    ):
        """`start_epoch`: the epoch the run resumes after (0: a fresh run); `learning_rate`:
        a float or an optax schedule of the step; `writer`: False on all but one process."""
        self.seeds = list(config.seeds)
        self.learning_rate, self.steps_per_epoch = learning_rate, steps_per_epoch
        self.last_epoch = start_epoch
        self.tensorboard = None
        if writer and "tensorboard" in names(config.get("log", "")):
            try:
                from tensorboardX import SummaryWriter
            except ImportError as e:
                raise ImportError(
                    "config.log='tensorboard' needs tensorboardX: pip install -e '.[tensorboard]'"
                ) from e
            self.tensorboard = SummaryWriter(
                logdir=str(pathlib.Path(workdir) / DIR),
                purge_step=start_epoch + 1 if start_epoch else None,
            )

    def epoch(self, record: dict) -> None:
        if self.tensorboard is None:
            return
        tb, epoch = self.tensorboard, record["epoch"]
        self.last_epoch = epoch
        for i, seed in enumerate(self.seeds):
            for key in PER_SEED:
                tb.add_scalar(f"{key}/seed_{seed}", record[key][i], epoch)
        lr = self.learning_rate
        lr = float(lr(epoch * self.steps_per_epoch)) if callable(lr) else float(lr)
        tb.add_scalar("learning_rate", lr, epoch)
        tb.add_scalar("step_seconds", record["seconds"] / max(self.steps_per_epoch, 1), epoch)
        tb.flush()

    def finish(self, summary: dict) -> None:
        """The test accuracies and the summary, at the last epoch trained."""
        if self.tensorboard is None:
            return
        epoch = self.last_epoch
        records = summary.get("per_seed", [summary])
        for seed, r in zip(self.seeds, records, strict=True):
            for key, value in r.items():
                if key.startswith("test_accuracy"):
                    self.tensorboard.add_scalar(f"{key}/seed_{seed}", value, epoch)
        text = json.dumps(summary, indent=2, default=str)
        self.tensorboard.add_text("summary", f"```\n{text}\n```", epoch)
        self.tensorboard.flush()

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
