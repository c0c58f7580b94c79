"""Experiment tracking beside metrics.jsonl: `--config.log=tensorboard`, `wandb`, or both
(`tensorboard,wandb`).

Per epoch and per seed: train and validation loss and accuracy under `<metric>/seed_<seed>`,
the learning rate at the epoch's end and the mean step time; at the end the test accuracies
and the summary.

- tensorboard: event files in RUN_DIR/tensorboard (through tensorboardX, the `tensorboard`
  extra); open them with `tensorboard --logdir RUN_DIR/tensorboard` (TensorBoard itself is
  not a dependency). The summary is text. A resumed run appends: its writer purges the events
  from the epoch it resumes at on (those of an epoch whose checkpoint a killed run never
  wrote), so TensorBoard shows every epoch once.
- wandb: a Weights & Biases run (the `wandb` extra) in RUN_DIR/wandb, offline unless
  WANDB_API_KEY is set (WANDB_MODE, when set, decides); `wandb sync RUN_DIR/wandb/offline-run-*`
  uploads an offline run later. The test accuracies and the summary go into the run's summary.
  A resumed run continues the same W&B run (the id is kept in RUN_DIR/wandb/jaxdigits.json,
  with the last epoch logged) and logs no epoch twice.
"""

import json
import os
import pathlib
import secrets
import sys

LOGGERS = ("tensorboard", "wandb")
DIR = "tensorboard"
WANDB_DIR = "wandb"  # wandb.init(dir=RUN_DIR) puts its runs in RUN_DIR/wandb
WANDB_STATE = "jaxdigits.json"  # in WANDB_DIR: {"id": the W&B run's, "logged_through": epoch}
WANDB_PROJECT = "jaxdigits"
PER_SEED = ("loss", "accuracy", "val_loss", "val_accuracy")


def names(value: str) -> tuple[str, ...]:
    """config.log ("", "tensorboard", "tensorboard,wandb", ...) as names; ValueError naming
    the key if unknown."""
    given = tuple(n.strip() for n in value.split(",") if n.strip())
    unknown = [n for n in given if n not in LOGGERS]
    if unknown:
        raise ValueError(
            f"config.log={value!r}: unknown {', '.join(map(repr, unknown))}; "
            f"use a comma-separated list of {', '.join(map(repr, LOGGERS))}, or '' for none"
        )
    return given


def wandb_mode() -> str:
    """WANDB_MODE if set; otherwise online with an API key in the environment, else offline."""
    return os.environ.get("WANDB_MODE") or (
        "online" if os.environ.get("WANDB_API_KEY") else "offline"
    )


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
        self.tensorboard = self.wandb = None
        loggers = names(config.get("log", "")) if writer else ()
        # Both imports before either writer starts: a missing package leaves no files.
        if "tensorboard" in loggers:
            try:
                from tensorboardX import SummaryWriter
            except ImportError as e:
                raise ImportError(
                    "config.log='tensorboard' needs tensorboardX: pip install -e '.[tensorboard]'"
                ) from e
        if "wandb" in loggers:
            try:
                import wandb
            except ImportError as e:
                raise ImportError(
                    "config.log='wandb' needs wandb: pip install -e '.[wandb]'"
                ) from e
        if "tensorboard" in loggers:
            self.tensorboard = SummaryWriter(
                logdir=str(pathlib.Path(workdir) / DIR),
                purge_step=start_epoch + 1 if start_epoch else None,
            )
        if "wandb" in loggers:
            try:
                self._start_wandb(wandb, config, pathlib.Path(workdir))
            except BaseException:
                self.close()  # the trainer closes only a Tracker it got
                raise

    def _start_wandb(self, wandb, config, workdir: pathlib.Path) -> None:
        # W&B cannot drop logged steps the way TensorBoard's purge does (within a run, a step
        # logged again is ignored), so a resumed run skips the epochs it logged already: a run
        # killed after logging epoch N but before N's checkpoint retrains N deterministically,
        # and W&B holds those values. The state file is written right after each wandb.log; a
        # kill between the two can still repeat one epoch.
        self.wandb_state = workdir / WANDB_DIR / WANDB_STATE
        state = {"id": secrets.token_hex(4), "logged_through": 0}
        if self.wandb_state.exists():
            state.update(json.loads(self.wandb_state.read_text()))
        self.wandb_id, self.logged_through = state["id"], int(state["logged_through"])
        self.wandb = wandb.init(
            project=WANDB_PROJECT,
            dir=str(workdir),
            name=workdir.resolve().name,
            config=json.loads(config.to_json()),
            id=self.wandb_id,
            resume="allow",
            mode=wandb_mode(),
        )
        self._save_wandb_state()  # the id, before the first epoch

    def _save_wandb_state(self) -> None:
        state = {"id": self.wandb_id, "logged_through": self.logged_through}
        self.wandb_state.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.wandb_state.with_suffix(".json.partial")
        tmp.write_text(json.dumps(state) + "\n")
        os.replace(tmp, self.wandb_state)

    def epoch(self, record: dict) -> None:
        if self.tensorboard is None and self.wandb is None:
            return
        epoch = record["epoch"]
        self.last_epoch = epoch
        scalars = {
            f"{key}/seed_{seed}": record[key][i]
            for i, seed in enumerate(self.seeds)
            for key in PER_SEED
        }
        lr = self.learning_rate
        scalars["learning_rate"] = (
            float(lr(epoch * self.steps_per_epoch)) if callable(lr) else float(lr)
        )
        scalars["step_seconds"] = record["seconds"] / max(self.steps_per_epoch, 1)
        if self.tensorboard is not None:
            for tag, value in scalars.items():
                self.tensorboard.add_scalar(tag, value, epoch)
            self.tensorboard.flush()
        if self.wandb is not None and epoch > self.logged_through:
            self.wandb.log(scalars, step=epoch, commit=True)
            self.logged_through = epoch
            self._save_wandb_state()

    def finish(self, summary: dict) -> None:
        """The test accuracies and the summary, at the last epoch trained (TensorBoard) or in
        the run's summary (W&B: a step it holds already could not take them)."""
        if self.tensorboard is None and self.wandb is None:
            return
        records = summary.get("per_seed", [summary])
        tests = {
            f"{key}/seed_{seed}": value
            for seed, r in zip(self.seeds, records, strict=True)
            for key, value in r.items()
            if key.startswith("test_accuracy")
        }
        if self.tensorboard is not None:
            for tag, value in tests.items():
                self.tensorboard.add_scalar(tag, value, self.last_epoch)
            text = json.dumps(summary, indent=2, default=str)
            self.tensorboard.add_text("summary", f"```\n{text}\n```", self.last_epoch)
            self.tensorboard.flush()
        if self.wandb is not None:
            self.wandb.summary.update({**json.loads(json.dumps(summary, default=str)), **tests})

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
        if self.wandb is not None:
            # In the trainer's `finally`: a run that raised is marked failed in W&B.
            self.wandb.finish(exit_code=1 if sys.exc_info()[1] is not None else 0)
            self.wandb = None
