"""Polite stops and numerical faults in a training run.

SIGTERM (a scheduler's preemption, `kill`) and SIGINT (Ctrl-C) only ask
the loop to stop: it finishes the jitted call in flight, saves a
checkpoint (part-way through the epoch if need be) and raises Interrupted,
which the CLI turns into one line and exit status 128 + the signal's
number. A second Ctrl-C stops at once, as Python does by default.
"""

import signal
import threading

import numpy as np

SIGNALS = (signal.SIGTERM, signal.SIGINT)
NONFINITE = ("stop", "skip")  # config.nonfinite: what a NaN or inf loss does


class Interrupted(Exception):
    """The run stopped on a signal after saving a checkpoint."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.exit_status = 128 + signum


class NonFiniteError(ValueError):
    """A loss became NaN or infinite; the message names the epoch, step, seed and metric."""


class StopRequests:
    """Context: while active, SIGTERM and SIGINT set `signum` instead of ending the process."""

    def __init__(self):
        self.signum = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C
        self.signum = signum
        print(f"\n{signal.Signals(signum).name}: saving a checkpoint, then stopping", flush=True)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # handlers live there only
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        return False

    def interrupted(self, where: str) -> Interrupted:
        name = signal.Signals(self.signum).name
        return Interrupted(
            self.signum, f"stopped by {name} {where}; run the same command again to resume"
        )


def check_finite(metrics: dict, active, seeds, epoch: int, steps: tuple[int, int] | None = None):
    """Raises NonFiniteError at the first step where an active seed's metric is NaN or infinite.

    metrics: per-step numpy arrays [steps, S], the steps after `steps[0]` of an
    epoch of `steps[1]`; or, with `steps` None, the epoch's validation [1, S].
    """
    active = np.asarray(active)
    undone = np.asarray(metrics.get("skipped", False))  # steps config.nonfinite=skip undid
    for name, values in metrics.items():
        if name == "skipped":
            continue
        bad = ~np.isfinite(values) & active & ~undone
        if not bad.any():
            continue
        row, col = np.argwhere(bad)[0]
        where = f"epoch {epoch} (validation)"
        if steps is not None:
            step, per_epoch = steps[0] + int(row) + 1, steps[1]
            where = (
                f"epoch {epoch}, step {step} of {per_epoch} "
                f"(global step {(epoch - 1) * per_epoch + step})"
            )
        raise NonFiniteError(
            f"{name} is {values[row, col]} at {where}, seed {seeds[col]}; the last good "
            "checkpoint is kept. Lower config.learning_rate, or set config.nonfinite=skip "
            "to skip such steps"
        )
