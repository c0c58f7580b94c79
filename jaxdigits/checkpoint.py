"""Orbax checkpoints of a run directory.

    <workdir>/checkpoints/<epoch>/   latest training state (params, optimizer,
                                     early-stopping bookkeeping, best params)
    <workdir>/best/<epoch>/          per-seed best params (lowest val loss)

Both are orbax CheckpointManagers; the state keeps its two newest steps,
the best its newest. The state checkpoint holds everything needed to
resume exactly: the per-epoch PRNG keys are derived from (seed, epoch), so
no key needs saving.
"""

import pathlib

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers

from jaxdigits import configs

STATE_DIR, BEST_DIR = "checkpoints", "best"


def manager(directory: pathlib.Path, keep: int = 1) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(
        create=True,
        enable_async_checkpointing=False,
        preservation_policy=checkpoint_managers.LatestN(keep),
    )
    return ocp.CheckpointManager(directory.absolute(), options=options)


class RunCheckpoints:
    """The latest state and the best params of one run directory."""

    def __init__(self, workdir: pathlib.Path):
        self.state = manager(workdir / STATE_DIR, keep=2)  # the previous one, should the last break
        self.best = manager(workdir / BEST_DIR)

    def latest_epoch(self) -> int | None:
        return self.state.latest_step()

    def restore_state(self, target):
        """The latest state; best params saved after it (by a run that died) are dropped."""
        step = self.state.latest_step()
        for stale in [s for s in self.best.all_steps() if s > step]:
            self.best.delete(stale)
        return self.state.restore(step, args=ocp.args.StandardRestore(target))

    def save(self, epoch: int, state, improved: bool):
        """Saves the state of `epoch`, and the best params if any seed improved."""
        if improved:
            best = {k: state[k] for k in ("best_params", "best_epoch", "best_val_loss")}
            self.best.save(epoch, args=ocp.args.StandardSave(best))
        self.state.save(epoch, args=ocp.args.StandardSave(state), force=True)
        self.state.wait_until_finished()
        self.best.wait_until_finished()

    def close(self):
        self.state.close()
        self.best.close()


def latest_epoch(workdir: str | pathlib.Path) -> int | None:
    """The epoch of a run's latest training state; None for a new run."""
    directory = pathlib.Path(workdir) / STATE_DIR
    if not directory.is_dir():
        return None
    mgr = manager(directory)
    step = mgr.latest_step()
    mgr.close()
    return step


def restore_best(workdir: str | pathlib.Path) -> dict:
    """{'best_params', 'best_epoch', 'best_val_loss'} of a finished or running run."""
    return _restore_newest(pathlib.Path(workdir), BEST_DIR, "best")


def restore_latest(workdir: str | pathlib.Path) -> dict:
    """The newest training state of a run (as numpy), its params under ['train']['params']."""
    return _restore_newest(pathlib.Path(workdir), STATE_DIR, "training state")


def seed_params(workdir: str | pathlib.Path, seed: int, which: str = "best") -> dict:
    """One seed's params, without the seed axis: `model.apply({"params": p}, x)` takes them.

    which: "best" (lowest validation loss) or "last" (the latest training state).
    """
    seeds = list(configs.load_saved(workdir).seeds)
    if seed not in seeds:
        raise ValueError(f"{workdir}: trained seeds {seeds}, not {seed}")
    if which == "best":
        params = restore_best(workdir)["best_params"]
    elif which == "last":
        params = restore_latest(workdir)["train"]["params"]
    else:
        raise ValueError(f"which={which!r}: use best or last")
    return jax.tree.map(lambda x: x[seeds.index(seed)], params)


def _restore_newest(workdir: pathlib.Path, name: str, what: str) -> dict:
    directory = workdir / name
    if not directory.is_dir():
        raise FileNotFoundError(f"{workdir}: no {what} checkpoint ({directory} does not exist)")
    mgr = manager(directory)
    step = mgr.latest_step()
    if step is None:
        raise FileNotFoundError(f"{directory}: holds no checkpoint step")
    restored = mgr.restore(step, args=ocp.args.StandardRestore())
    mgr.close()
    return jax.tree.map(np.asarray, restored)
