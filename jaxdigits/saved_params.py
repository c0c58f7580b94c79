"""A run's saved params and states, read from outside its training: evaluate, predict, the
report, and a run initialised from another (config.init).

A run directory's newest checkpoints (jaxdigits.checkpoint) are read as numpy; a run kept
in the repo (results/runs/<run>) has no checkpoints but its params alone in `PARAMS_DIR`,
which `save_params` writes (python -m jaxdigits.report --keep RUN --params): what
jaxdigits.predict needs on a fresh clone, without the optimizer state; kept small.
"""

import pathlib

import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxdigits import checkpoint, defaults

PARAMS_DIR, MAX_KEPT_PARAMS_BYTES = "params", 10 << 20
WHICH = ("best", "last")  # the two sets of params a run keeps


def restore_best(workdir: str | pathlib.Path) -> dict:
    """{'best_params', 'frozen', 'best_epoch', 'best_val_loss'} of a finished or running run
    ('frozen': the params no seed trains, one copy; {} for most models)."""
    return _restore_newest(pathlib.Path(workdir), checkpoint.BEST_DIR, "best")


def restore_latest(workdir: str | pathlib.Path) -> dict:
    """The newest training state of a run (as numpy), its params under ['train']['params']."""
    return _restore_newest(pathlib.Path(workdir), checkpoint.STATE_DIR, "training state")


def seed_params(workdir: str | pathlib.Path, seed: int, which: str = "best") -> dict:
    """One seed's params, without the seed axis, its frozen ones included:
    `model.apply({"params": p}, x)` takes them.

    which: "best" (lowest validation loss) or "last" (the latest training state).
    """
    seeds = list(defaults.load_saved(workdir).seeds)
    if seed not in seeds:
        raise ValueError(f"{workdir}: trained seeds {seeds}, not {seed}")
    params, frozen = run_part(workdir, which)
    return {**jax.tree.map(lambda x: x[seeds.index(seed)], params), **frozen}


def _kept(workdir: pathlib.Path) -> bool:
    """A run kept in the repo (results/runs/<run>): its params/, no checkpoints. Raises
    FileNotFoundError for a run directory with neither (a run kept without --params)."""
    if (workdir / checkpoint.STATE_DIR).is_dir() or (workdir / checkpoint.BEST_DIR).is_dir():
        return False
    if (workdir / PARAMS_DIR).is_dir():
        return True
    raise FileNotFoundError(
        f"{workdir}: no params, neither checkpoints ({checkpoint.STATE_DIR}/) nor kept params "
        f"({PARAMS_DIR}/): a run kept with `python -m jaxdigits.report --keep RUN` holds its "
        "params only when kept with --params; re-run its train command for them"
    )


def run_params(workdir: str | pathlib.Path) -> tuple[dict, dict, dict]:
    """(last, best, frozen) params of a run directory or a kept run: every seed's [S, ...],
    and the frozen ones once ({} for most models)."""
    (last, best), frozen = _read_params(pathlib.Path(workdir), ("last", "best"))
    return last, best, frozen


def run_part(workdir: str | pathlib.Path, which: str) -> tuple[dict, dict]:
    """(params, frozen) of a run directory or a kept run: which = "best" (lowest validation
    loss) or "last" (the latest training state), every seed's [S, ...]; only the part asked
    for is read from a run directory's checkpoints, and its frozen params if it has any."""
    if which not in WHICH:
        raise ValueError(f"which={which!r}: use {' or '.join(WHICH)}")
    (params,), frozen = _read_params(pathlib.Path(workdir), (which,))
    return params, frozen


def _read_params(workdir: pathlib.Path, which: tuple[str, ...]) -> tuple[list, dict]:
    """([params of each of `which`], frozen) of a kept run (its params/) or a run directory
    (its checkpoints: the best one always, for the frozen params; the latest if asked)."""
    if _kept(workdir):
        kept = ocp.StandardCheckpointer().restore((workdir / PARAMS_DIR).resolve())
        return [kept[w] for w in which], kept.get("frozen", {})
    best = restore_best(workdir)
    params = [
        best["best_params"] if w == "best" else restore_latest(workdir)["train"]["params"]
        for w in which
    ]
    return params, best.get("frozen", {})


def source_params(workdir: str | pathlib.Path, seeds, which: str = "best") -> dict:
    """Another run's `which` params ("best" or "last") for a run of `seeds` (config.init,
    config.init_params): per seed [S, ...].

    `workdir` is a run directory or a kept run (results/runs/<run>, its params/). When it
    trained every one of `seeds`, each seed starts from its own; otherwise one source seed
    is broadcast to all, or as many source seeds as there are seeds are taken in order.
    """
    params = jax.tree.map(np.asarray, run_part(workdir, which)[0])
    trained = list(defaults.load_saved(workdir).seeds)
    n_src, n = jax.tree.leaves(params)[0].shape[0], len(seeds)
    if set(seeds) <= set(trained) and n_src == len(trained):
        rows = [trained.index(s) for s in seeds]
    elif n_src in (1, n):
        rows = [i if n_src == n else 0 for i in range(n)]
    else:
        raise ValueError(f"{workdir}: has {n_src} seeds; cannot initialise {n} seeds from it")
    return jax.tree.map(lambda x: x[rows], params)


def save_params(workdir, target) -> int:
    """Writes `workdir`'s last and best params (every seed; the frozen ones once) as one
    checkpoint in target/PARAMS_DIR, which seed_params reads; returns its bytes. Refuses
    runs whose params exceed MAX_KEPT_PARAMS_BYTES (the VGG features alone are 37 MB)."""
    last, best, frozen = run_params(workdir)
    tree = {"last": last, "best": best}
    if frozen:
        tree["frozen"] = frozen
    size = sum(np.asarray(x).nbytes for x in jax.tree.leaves(tree))
    if size > MAX_KEPT_PARAMS_BYTES:
        raise ValueError(
            f"{workdir}: its params are {size / 2**20:.1f} MiB, over the "
            f"{MAX_KEPT_PARAMS_BYTES / 2**20:.0f} MiB a kept run may hold in the repo"
        )
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save((pathlib.Path(target) / PARAMS_DIR).resolve(), tree)
    checkpointer.wait_until_finished()
    return size


def _restore_newest(workdir: pathlib.Path, name: str, what: str) -> dict:
    directory = workdir / name
    if not directory.is_dir():
        raise FileNotFoundError(f"{workdir}: no {what} checkpoint ({directory} does not exist)")
    mgr = checkpoint.manager(directory)
    step = mgr.latest_step()
    if step is None:
        raise FileNotFoundError(f"{directory}: holds no checkpoint step")
    try:
        restored = checkpoint.restore_step(mgr, step)
    except checkpoint.CheckpointError as e:
        raise checkpoint.CheckpointError(
            f"{e}. Re-running the run's train command resumes from the last good checkpoint "
            "and writes this one again."
        ) from e
    finally:
        mgr.close()
    return jax.tree.map(np.asarray, restored)
