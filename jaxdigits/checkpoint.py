"""Orbax checkpoints of a run directory, checked before they are trusted.

    <workdir>/checkpoints/<epoch>/   latest training state (params, optimizer,
                                     early-stopping bookkeeping, best params,
                                     frozen params: one copy for all seeds)
    <workdir>/best/<epoch>/          per-seed best params (lowest val loss), frozen params
    <workdir>/partial/<epoch>/       the train state part-way through `epoch`,
                                     written when a run is stopped by a signal
    <workdir>/damaged/               checkpoints found damaged, moved aside

All three are orbax CheckpointManagers; the state keeps its two newest
steps, so a damaged newest one still leaves one to resume from. Orbax
writes a step into a temporary directory and renames it when complete, so
a process killed mid-write leaves no step under a final name. After that
rename each step gets a manifest (`MANIFEST`: every file's size and
SHA-256), which catches what orbax cannot: a file truncated, changed or
lost afterwards. A step without a manifest (written before manifests, or
killed between rename and manifest) is trusted if it restores.

The state checkpoint holds everything needed to resume exactly: the
per-epoch PRNG keys are derived from (seed, epoch), so no key needs saving.
"""

import hashlib
import json
import pathlib
import shutil
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers

from jaxdigits.runtime import parallel

STATE_DIR, BEST_DIR, PARTIAL_DIR, DAMAGED_DIR = "checkpoints", "best", "partial", "damaged"
MANIFEST = "jaxdigits_files.json"


class CheckpointError(ValueError):
    """A checkpoint is damaged or missing; the message names its directory."""


def manager(directory: pathlib.Path, keep: int = 1) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(
        create=True,
        enable_async_checkpointing=False,
        cleanup_tmp_directories=True,  # what a killed write left behind
        preservation_policy=checkpoint_managers.LatestN(keep),
    )
    return ocp.CheckpointManager(
        directory.absolute(), options=options, item_handlers=ocp.StandardCheckpointHandler()
    )


def _files(step_dir: pathlib.Path) -> dict[str, list]:
    def digest(path):
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()

    files = sorted(p for p in step_dir.rglob("*") if p.is_file() and p.name != MANIFEST)
    return {str(p.relative_to(step_dir)): [p.stat().st_size, digest(p)] for p in files}


def write_manifest(step_dir: pathlib.Path):
    """Records every file of a committed step (written under a temporary name, then renamed)."""
    if not parallel.is_writer():
        return
    tmp = step_dir / (MANIFEST + ".partial")
    tmp.write_text(json.dumps(_files(step_dir), indent=0))
    tmp.replace(step_dir / MANIFEST)


def verify(step_dir: pathlib.Path):
    """Raises CheckpointError naming the first file that is missing, truncated or changed."""
    path = step_dir / MANIFEST
    if not path.exists():
        return
    try:
        expected = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: unreadable manifest ({e})") from e
    found = _files(step_dir)
    for name, (size, digest) in expected.items():
        if name not in found:
            raise CheckpointError(f"{step_dir / name}: missing")
        if found[name][0] != size:
            raise CheckpointError(f"{step_dir / name}: {found[name][0]} bytes, written {size}")
        if found[name][1] != digest:
            raise CheckpointError(f"{step_dir / name}: contents changed since written")


def restore_step(mgr: ocp.CheckpointManager, step: int, target=None):
    """Verifies and restores one step; any failure is a CheckpointError naming it.

    A training state saved before the frozen params had a key of their own
    (no "frozen") restores into `target` with target's frozen params, which
    a run rebuilds from its config; one that held frozen params per seed
    (the VGG features) raises ValueError: it cannot be resumed.
    """
    step_dir = pathlib.Path(mgr.directory) / str(step)
    verify(step_dir)
    try:
        if target is None:  # as saved, onto this process's first device (any topology)
            device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
            target = jax.tree.map(
                lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                mgr.item_metadata(step).tree,
            )
        elif "frozen" in target and "frozen" not in mgr.item_metadata(step).tree:
            _check_older(step_dir, mgr.item_metadata(step).tree, target)
            older = {k: v for k, v in target.items() if k != "frozen"}
            return {**_restore_like(mgr, step, older), "frozen": target["frozen"]}
        return _restore_like(mgr, step, target)
    except OlderCheckpoint:
        raise
    except Exception as e:  # orbax and tensorstore raise many types on damaged files
        raise CheckpointError(f"{step_dir}: cannot be restored ({type(e).__name__}: {e})") from e


def _restore_like(mgr: ocp.CheckpointManager, step: int, target):
    """Restores `step` into `target`'s structure, each array placed as target's is.

    Orbax restores onto an explicit sharding, and an explicitly placed (committed) argument
    lowers to a program with sharding annotations: a resumed run would compile every
    program again instead of reading the fresh run's from the compilation cache. So the
    arrays JAX placed itself (uncommitted: a fresh run's state on one device) come back as
    numpy and are placed the same way; committed ones (a mesh) keep their sharding."""
    uncommitted = lambda x: isinstance(x, jax.Array) and not x.committed  # noqa: E731
    host = jax.tree.map(lambda x: np.empty(x.shape, x.dtype) if uncommitted(x) else x, target)
    restored = mgr.restore(step, args=ocp.args.StandardRestore(host))
    return jax.tree.map(lambda r, t: jax.device_put(r) if uncommitted(t) else r, restored, target)


class OlderCheckpoint(ValueError):
    """A checkpoint of an older layout that this version cannot resume."""


def _check_older(step_dir, saved: dict, target: dict):
    extra = set(saved["train"]["params"]) - set(target["train"]["params"])
    if extra:
        raise OlderCheckpoint(
            f"{step_dir}: written by an older jaxdigits that kept {', '.join(sorted(extra))} "
            "per seed; it cannot be resumed: train in a new --workdir"
        )


class RunCheckpoints:
    """The latest state, the best params and a stopped epoch's partial state of one run."""

    def __init__(self, workdir: pathlib.Path):
        self.workdir = pathlib.Path(workdir)
        self.state = manager(self.workdir / STATE_DIR, keep=2)  # the previous, should one break
        self.best = manager(self.workdir / BEST_DIR)
        self.partial = manager(self.workdir / PARTIAL_DIR)

    def latest_epoch(self) -> int | None:
        return self.state.latest_step()

    def _move_aside(self, mgr: ocp.CheckpointManager, step: int) -> pathlib.Path:
        """Moves a damaged step out of its manager's directory; nothing is deleted."""
        source = pathlib.Path(mgr.directory) / str(step)
        target = self.workdir / DAMAGED_DIR / f"{source.parent.name}-{step}-{time.time_ns()}"
        if parallel.is_writer():
            target.parent.mkdir(exist_ok=True)
            shutil.move(source, target)
        parallel.barrier(f"moved {source}")
        mgr.reload()
        return target

    def restore_state(self, target) -> tuple[int, dict | None]:
        """(epoch, state) of the newest step that verifies and restores; (0, None) if none.

        Damaged steps are moved to damaged/ with a message; best params saved
        after the restored epoch (by a run that died) are dropped.
        """
        epoch, state = 0, None
        for step in sorted(self.state.all_steps(), reverse=True):
            try:
                epoch, state = step, restore_step(self.state, step, target)
                break
            except CheckpointError as e:
                moved = self._move_aside(self.state, step)
                print(f"warning: damaged checkpoint, moved to {moved}: {e}")
        for stale in [s for s in self.best.all_steps() if s > epoch]:
            self.best.delete(stale)
        if state is not None:
            self._repair_best(state)
        return epoch, state

    def _repair_best(self, state):
        """Rewrites the best params from the restored state if their checkpoint is damaged."""
        step = self.best.latest_step()
        if step is None:
            return
        try:
            verify(pathlib.Path(self.best.directory) / str(step))
        except CheckpointError as e:
            moved = self._move_aside(self.best, step)
            print(f"warning: damaged best checkpoint, moved to {moved}: {e}")
            self._save(self.best, step, _best_part(state))

    def _save(self, mgr: ocp.CheckpointManager, step: int, tree):
        mgr.save(step, args=ocp.args.StandardSave(tree), force=True)
        mgr.wait_until_finished()
        write_manifest(pathlib.Path(mgr.directory) / str(step))

    def save(self, epoch: int, state, improved: bool):
        """Saves the state of `epoch`, and the best params if any seed improved.

        The best goes first: a run killed between the two resumes from the
        previous state and drops that best (restore_state).
        """
        if improved:
            self._save(self.best, epoch, _best_part(state))
        self._save(self.state, epoch, state)
        for step in self.partial.all_steps():
            self.partial.delete(step)

    def save_partial(self, epoch: int, tree: dict):
        """The train state part-way through `epoch`: {"train", "done" (steps), "seconds",
        "metrics" (per step, [done, S])}."""
        self._save(self.partial, epoch, tree)

    def restore_partial(self, epoch: int, train_target) -> dict | None:
        """save_partial's tree for `epoch` (its "train" like `train_target`), or None.

        A partial state of another epoch is stale (that epoch finished): dropped.
        """
        result = None
        for step in self.partial.all_steps():
            if step == epoch:
                try:
                    result = restore_step(
                        self.partial, step, self._partial_target(step, train_target)
                    )
                    continue
                except CheckpointError as e:
                    print(f"warning: damaged partial checkpoint, epoch {epoch} starts over: {e}")
            self.partial.delete(step)
        return result

    def _partial_target(self, step: int, train_target) -> dict:
        """The restore target: the metrics' shapes (steps done so far) come from the step."""
        try:
            saved = self.partial.item_metadata(step).tree
            metrics = {k: np.zeros(m.shape, m.dtype) for k, m in saved["metrics"].items()}
        except Exception as e:  # a damaged or foreign step
            raise CheckpointError(f"{self.partial.directory}/{step}: unreadable ({e})") from e
        return {
            "train": train_target,
            "done": np.asarray(0),
            "seconds": np.asarray(0.0),
            "metrics": metrics,
        }

    def close(self):
        self.state.close()
        self.best.close()
        self.partial.close()


def _best_part(state) -> dict:
    return {k: state[k] for k in ("best_params", "frozen", "best_epoch", "best_val_loss")}


def latest_epoch(workdir: str | pathlib.Path) -> int | None:
    """The epoch of a run's latest training state; None for a new run."""
    directory = pathlib.Path(workdir) / STATE_DIR
    if not directory.is_dir():
        return None
    mgr = manager(directory)
    step = mgr.latest_step()
    mgr.close()
    return step
