"""train_and_evaluate(config, workdir): one run, all its seeds in one program."""

import contextlib
import dataclasses
import json
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from jaxdigits import (
    checkpoint,
    data,
    defaults,
    epochs,
    models,
    output,
    saved_params,
    scoring,
    steps,
    teacher,
    tracking,
)
from jaxdigits.data import pipeline
from jaxdigits.runtime import interrupt, memory_estimate, parallel, validate

# Keys a resumed run may change: extending a run by more epochs, logging it, or reading its
# test predictions another way (a finished run re-tests). Models add theirs
# (models.Model.resumable).
RESUMABLE_CHANGES = ("num_epochs", "steps_per_call", "nonfinite", "log", "decodes")


def _check_config(config):
    """Every key and value, before any data is read or anything compiled (validate.py)."""
    validate.check(config)


def _save_config(config, workdir: pathlib.Path, resuming: bool):
    """A workdir holds one experiment: resuming with another config is refused."""
    path = workdir / output.CONFIG
    current = json.loads(config.to_json())
    if resuming and path.exists():
        saved = defaults.with_defaults(json.loads(path.read_text()))
        keys = (set(saved) | set(current)) - {*RESUMABLE_CHANGES, *models.resumable_keys()}
        diff = sorted(k for k in keys if saved.get(k) != current.get(k))
        if diff:
            raise ValueError(
                f"{path}: the run in this workdir used another config (differs in: "
                f"{', '.join(diff)}). Use a new --workdir or the same config."
            )
    output.write_json(path, current)


def _splits(n, config):
    splits = [pipeline.split_indices(n, config.data.val_fraction, s) for s in config.seeds]
    train_idx, val_idx = (np.stack(x) for x in zip(*splits, strict=True))
    if train_idx.shape[1] < config.batch_size:
        raise ValueError(
            f"config.batch_size={config.batch_size} is larger than the training split "
            f"({train_idx.shape[1]} images)"
        )
    return train_idx, val_idx


def _init_params(model, config, pretrained: dict, resuming: bool = False):
    """(per-seed trainable params, frozen params): fresh (torch-style init; the frozen
    subtrees, models.Model.frozen, one copy from `pretrained`), or another run's best params. A
    resuming run restores its own, so it needs only the shapes."""
    keys = jnp.stack([jax.random.PRNGKey(s) for s in config.seeds])
    fresh = steps.init_seeds(model, keys, config.data.image_size)
    fresh, frozen = models.split_frozen(config.model, fresh)
    # Without the pretrained parts (a resuming run), seed 0's init gives their shapes.
    frozen = {
        k: jax.tree.map(jnp.asarray, pretrained[k])
        if k in pretrained
        else jax.tree.map(lambda x: x[0], v)
        for k, v in frozen.items()
    }
    if not config.init or resuming:
        return fresh, frozen
    source = saved_params.source_params(config.init, config.seeds, config.init_params)

    def take(src, ref):
        if src.shape[1:] != ref.shape[1:]:
            raise ValueError(f"{config.init}: param shape {src.shape[1:]} != {ref.shape[1:]}")
        return jnp.asarray(src, ref.dtype)

    if set(source) != set(fresh):
        raise ValueError(
            f"{config.init}: its params ({', '.join(sorted(source))}) are not those of "
            f"{config.model} ({', '.join(sorted(fresh))})"
        )
    return jax.tree.map(take, source, fresh), frozen


def train_and_evaluate(config, workdir, command: str | None = None) -> dict:
    """Trains every seed of `config` in `workdir` (resuming what is there) and tests them.

    `command`, the command line that started the run, goes into summary.json.
    """
    workdir = pathlib.Path(workdir)
    _check_config(config)
    mesh = parallel.mesh(config)  # None: one device
    seeds = tuple(config.seeds)
    resuming = bool(checkpoint.latest_epoch(workdir))
    pretrained = {} if resuming else models.pretrained(config)
    workdir.mkdir(parents=True, exist_ok=True)

    # Data: host arrays, moved to the device once.
    ds = data.build(config.data)
    if config.teacher:  # the labels trained on: a teacher's answers, never the wrong label
        ds = dataclasses.replace(ds, labels=teacher.labels(config.teacher, ds.images, ds.labels))
    train_idx, val_idx = _splits(len(ds.labels), config)
    # Before anything compiles: one line with the numbers if it won't fit.
    memory_estimate.check_fits(
        config, len(ds.labels), len(ds.test_labels), ds.images.shape[1:], ds.test_images.shape[1:]
    )
    images, labels = parallel.replicate((ds.images, ds.labels), mesh)

    # Model, optimizer and the per-seed state.
    model = models.build(config)
    steps_per_epoch = train_idx.shape[1] // config.batch_size
    tx = steps.make_optimizer(config, steps_per_epoch)
    state = parallel.replicate(_fresh_state(model, tx, config, pretrained, resuming), mesh)

    # Resume from the newest checkpoint that verifies, if any.
    ckpts = checkpoint.RunCheckpoints(workdir)
    _save_config(config, workdir, resuming=bool(ckpts.latest_epoch()))
    start, restored = ckpts.restore_state(state)  # also drops what a killed start left
    if restored is not None:
        state = restored
        print(f"resuming {workdir} after epoch {start}")
    elif resuming:  # every checkpoint was damaged: a fresh start, pretrained parts included
        state = parallel.replicate(_fresh_state(model, tx, config, models.pretrained(config)), mesh)
    output.truncate_metrics(workdir, start)
    lr = steps.learning_rate(config, steps_per_epoch)
    tracker = tracking.Tracker(config, workdir, start, lr, steps_per_epoch, parallel.is_writer())
    try:
        # Train: jitted calls over each epoch, validation, early stopping, checkpoint.
        bar = tqdm.tqdm(total=steps_per_epoch, unit="step", leave=False)
        train_calls = epochs.make_epoch_calls(
            model,
            tx,
            config,
            progress=lambda t: bar.update(int(t) - bar.n),
            batch_sharding=parallel.batch_sharding(mesh),
        )
        evaluate = scoring.evaluator(model, config)
        seed_keys = jnp.stack([jax.random.PRNGKey(s) for s in seeds])
        # Closing the bar first: a stopped run's message gets a line of its own.
        with interrupt.StopRequests() as stop, contextlib.closing(ckpts), contextlib.closing(bar):
            for epoch in range(start + 1, config.num_epochs + 1):
                if not np.asarray(state["active"]).any():
                    break
                bar.reset()
                bar.set_description(f"epoch {epoch}/{config.num_epochs}")
                keys = np.asarray(jax.vmap(lambda k: jax.random.fold_in(k, epoch))(seed_keys))  # noqa: B023
                active = state["active"]
                epoch_args = (state["frozen"], images, labels, train_idx, keys, active)
                state["train"], train_m, seconds = _train_epoch(
                    train_calls, state["train"], epoch_args, epoch, ckpts, stop, config
                )
                val_loss, val_acc, _ = evaluate(
                    state["train"]["params"],
                    state["frozen"],
                    images,
                    labels,
                    val_idx,
                    config.data.mean,
                    config.data.std,
                )
                interrupt.check_finite({"val_loss": val_loss[None]}, active, seeds, epoch)
                state, improved = _early_stopping(state, active, val_loss, epoch, seconds, config)
                if mesh is not None:  # the bookkeeping computed on the host, back on every device
                    state = parallel.replicate(state, mesh)
                record = {
                    "epoch": epoch,
                    "seconds": seconds,
                    **{k: np.asarray(v).tolist() for k, v in train_m.items()},
                    "val_loss": val_loss.tolist(),
                    "val_accuracy": val_acc.tolist(),
                    "active": np.asarray(active).tolist(),
                }
                # Metrics first: a run killed before its checkpoint resumes from the
                # previous epoch and drops this line; the other order would lose it.
                output.append_metrics(workdir, record)
                tracker.epoch(record)
                ckpts.save(epoch, state, improved=bool(np.any(improved)))
                tqdm.tqdm.write(_epoch_line(record))
                if stop.signum is not None and epoch < config.num_epochs:
                    raise stop.interrupted(f"after epoch {epoch}")
        train_acc = None
        if config.eval_train_split:  # eval mode, last params, as the digit-sum study reported it
            params = state["train"]["params"]
            _, train_acc, _ = evaluate(
                params,
                state["frozen"],
                images,
                labels,
                train_idx,
                config.data.mean,
                config.data.std,
            )
        summary = scoring.finish(config, workdir, model, ds, state, train_acc, command)
        tracker.finish(summary)
        return summary
    finally:
        tracker.close()


def _fresh_state(model, tx, config, pretrained: dict, resuming: bool = False) -> dict:
    """The per-seed state of epoch 0 (a resuming run restores into its shapes)."""
    n_seeds = len(config.seeds)
    params, frozen = _init_params(model, config, pretrained, resuming)
    return {
        "train": {"params": params, "opt_state": jax.jit(jax.vmap(tx.init))(params)},
        "frozen": frozen,  # one copy, no seed axis ({} for most models)
        "best_params": _copy(params),  # train params are donated
        "best_val_loss": jnp.full((n_seeds,), jnp.inf),
        "best_epoch": jnp.zeros((n_seeds,), jnp.int32),
        "wait": jnp.zeros((n_seeds,), jnp.int32),
        "active": jnp.ones((n_seeds,), bool),
        "train_seconds": jnp.zeros((n_seeds,)),
    }


def _train_epoch(train_calls, train, epoch_args, epoch, ckpts, stop, config):
    """One epoch's training, from where a stopped run left it: (train state, per-seed mean
    metrics, seconds). Checks every call's losses; on a signal, saves the state part-way
    through the epoch and raises Interrupted."""
    train_idx, active = epoch_args[3], epoch_args[5]
    n_steps = train_idx.shape[1] // config.batch_size
    done, seconds, parts = 0, 0.0, []
    partial = ckpts.restore_partial(epoch, train)
    if partial is not None:
        train, done, seconds = partial["train"], int(partial["done"]), float(partial["seconds"])
        parts.append(partial["metrics"])
        print(f"resuming epoch {epoch} after step {done}")
    t0 = time.perf_counter()
    for new, metrics, now_done in train_calls(train, *epoch_args, start=done):
        interrupt.check_finite(metrics, active, config.seeds, epoch, (done, n_steps))
        train, done = new, now_done
        parts.append(metrics)
        if stop.signum is not None and done < n_steps:
            jax.block_until_ready(train)
            seconds += time.perf_counter() - t0
            tree = {
                "train": train,
                "done": np.asarray(done),
                "seconds": np.asarray(seconds),
                "metrics": epochs.concat_metrics(parts),
            }
            ckpts.save_partial(epoch, tree)
            raise stop.interrupted(f"at step {done} of {n_steps} in epoch {epoch}")
    jax.block_until_ready(train)
    seconds += time.perf_counter() - t0
    return train, epochs.epoch_means(epochs.concat_metrics(parts)), seconds


@jax.jit  # one program, not one per parameter shape
def _copy(params):
    return jax.tree.map(jnp.copy, params)


@jax.jit
def _keep_best(improved, params, best):
    sel = lambda new, old: jnp.where(  # noqa: E731
        improved.reshape((-1,) + (1,) * (new.ndim - 1)), new, old
    )
    return jax.tree.map(sel, params, best)


def _early_stopping(state, active, val_loss, epoch, seconds, config):
    """Lightning's EarlyStopping on val_loss (mode min, min_delta 0), per seed.

    config.patience 0 turns stopping off; the best params are still kept.
    """
    active = np.asarray(active)
    improved = active & (val_loss < np.asarray(state["best_val_loss"]))
    wait = np.where(improved, 0, np.asarray(state["wait"]) + active)
    state = dict(state)
    state["best_params"] = _keep_best(improved, state["train"]["params"], state["best_params"])
    state["best_val_loss"] = jnp.where(improved, val_loss, state["best_val_loss"])
    state["best_epoch"] = jnp.where(improved, epoch, state["best_epoch"])
    state["wait"] = jnp.asarray(wait, jnp.int32)
    keep_going = active & (wait < config.patience) if config.patience else active
    state["active"] = jnp.asarray(keep_going)
    state["train_seconds"] = state["train_seconds"] + jnp.where(active, seconds, 0.0)
    return state, improved


def _epoch_line(r):
    fmt = lambda xs: " ".join(f"{x:.4f}" for x in xs)  # noqa: E731
    return (
        f"epoch {r['epoch']}: train loss {fmt(r['loss'])} acc {fmt(r['accuracy'])} | "
        f"val loss {fmt(r['val_loss'])} acc {fmt(r['val_accuracy'])} | {r['seconds']:.1f} s"
    )
