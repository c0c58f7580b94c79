"""An epoch of training as jitted calls of the train step (jaxdigits.steps).

`make_epoch_calls` scans the step over an epoch of device-resident shuffled
batches (one jitted call per epoch on accelerators, calls of a few steps on
the CPU, each a point where a run can stop and resume), all seeds in one
program; `make_train_epoch` runs all the calls of an epoch.

An epoch program has no host callback and no conditional: on XLA:GPU a
conditional in a loop copies its predicate to the host every iteration,
and a host callback is a synchronisation (and keeps the program out of the
compilation cache). Progress is reported on the host between calls.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxdigits.runtime import xla
from jaxdigits.steps import TRAIN_STEP_AXES, over_seeds, seed_axis, train_step


def steps_per_call(cfg) -> int:
    """Train steps per jitted call; 0 means the whole epoch in one call (a lax.scan).

    config.steps_per_call: N > 0 runs calls of N steps, -1 the whole epoch
    in one call, 0 picks: the whole epoch on accelerators; calls of 10 on
    the CPU backend, points where a stopped run saves and that keep the
    progress bar moving.
    """
    if cfg.steps_per_call:
        return max(cfg.steps_per_call, 0)
    return 10 if jax.default_backend() == "cpu" else 0


# XLA:CPU runs a step slower inside a while loop, but compiles the loop faster than the
# same steps unrolled (figures in docs/speed.md). Unrolling pays from about 1,300 steps
# in a run on; short runs (smoke runs, tests, the bench's quick runs) stay rolled.
UNROLL_FROM_STEPS = 1300


def unroll_calls(cfg, steps_per_epoch: int) -> bool:
    """Whether calls of N steps are unrolled (CPU backend, runs of UNROLL_FROM_STEPS steps
    or more) rather than a rolled lax.scan."""
    total = cfg.num_epochs * steps_per_epoch
    return jax.default_backend() == "cpu" and total >= UNROLL_FROM_STEPS


def make_epoch_calls(model, tx, cfg, progress=None, batch_sharding=None):
    """Returns `calls(states, frozen, images, labels, train_idx, keys, active, start=0)`, a
    generator that runs one epoch from step `start` and yields after every jitted call.

    states: per-seed pytree [S, ...] (donated); frozen: the frozen param
    subtrees, one copy for all seeds ({} if none); images/labels: the whole
    pool on the device; train_idx [S, n]: each seed's training indices;
    keys [S, 2]: each seed's key for this epoch; active [S]: seeds still
    training (stopped seeds keep their state). Each yield is `(states,
    metrics, done)`: the new states, that call's per-step metrics as numpy
    [steps, S] and the steps of the epoch done so far. A caller may stop
    between calls (a signal) and resume later from `start=done`: the batches
    depend only on the keys, so the rest of the epoch is the same.
    `progress(done)`, if given, is called on the host after each call, once
    its metrics have arrived (so it never runs ahead of the device).
    `batch_sharding`: see train_step.

    Calls of N steps (config.steps_per_call) are one compiled program, the
    epoch's last call included: its batches are padded to N with steps that
    change nothing (masked like a stopped seed) and whose metrics are dropped.

    With config.nonfinite "skip", a seed's step whose loss or new params
    are not finite leaves that seed's state as it was (metric "skipped").
    """
    batch = cfg.batch_size
    skip_nonfinite = cfg.get("nonfinite", "stop") == "skip"
    step = functools.partial(train_step, model=model, tx=tx, cfg=cfg, batch_sharding=batch_sharding)
    step = over_seeds(step, TRAIN_STEP_AXES, seed_axis(cfg))

    def seeds_step(states, frozen, images, labels, idx, keys, active):
        new, metrics = step(states, frozen, images, labels, idx, keys)
        keep = active
        if skip_nonfinite:
            keep = active & finite_per_seed(metrics["loss"], new["params"])
            metrics = dict(metrics, skipped=active & ~keep)
        sel = lambda n, o: jnp.where(keep.reshape((-1,) + (1,) * (n.ndim - 1)), n, o)  # noqa: E731
        return jax.tree.map(sel, new, states), metrics

    def shuffle(train_idx, keys):
        """[steps, S, B] batch indices: a fresh order per seed; the remainder is dropped."""
        n_steps = train_idx.shape[1] // batch

        def order(idx, key):
            perm = jax.random.permutation(jax.random.fold_in(key, 0), idx)
            return perm[: n_steps * batch].reshape(n_steps, batch)

        return jnp.swapaxes(jax.vmap(order)(train_idx, keys), 0, 1)

    def run_steps(states, frozen, images, labels, batches, keys, active, first, real, unroll=1):
        """Steps first .. first + len(batches) - 1; those at or past `real` are padding."""

        def body(carry, xs):
            t, idx = xs
            step_keys = jax.vmap(lambda k: jax.random.fold_in(k, t + 1))(keys)
            live = active & (t < real)
            return seeds_step(carry, frozen, images, labels, idx, step_keys, live)

        ts = first + jnp.arange(batches.shape[0])
        return jax.lax.scan(body, states, (ts, batches), unroll=unroll)

    chunk = steps_per_call(cfg)
    # The whole epoch in one call: the shuffle fuses into the program.
    whole_jit = xla.jit(
        lambda s, f, im, lb, idx, k, a: run_steps(s, f, im, lb, shuffle(idx, k), k, a, 0, 1 << 30),
        donate_argnums=(0,),
    )
    shuffle_jit = xla.jit(shuffle)
    # The rest of an epoch (resumed mid-way) or a call of N steps, rolled; or a call unrolled
    # completely (unroll = its length), so that XLA emits no loop (unroll_calls).
    rolled_jit = xla.jit(run_steps, donate_argnums=(0,))
    unrolled_jit = xla.jit(lambda *a: run_steps(*a, unroll=a[4].shape[0]), donate_argnums=(0,))

    def calls(states, frozen, images, labels, train_idx, keys, active, start=0):
        n_steps = train_idx.shape[1] // batch
        args = (frozen, images, labels)
        if not chunk and not start:
            states, metrics = whole_jit(states, *args, train_idx, keys, active)
            yield states, _done(metrics, n_steps, progress), n_steps
            return
        batches = shuffle_jit(train_idx, keys)
        if not chunk:
            rest = batches[start:]
            states, metrics = rolled_jit(states, *args, rest, keys, active, start, n_steps)
            yield states, _done(metrics, n_steps, progress), n_steps
            return
        program = unrolled_jit if unroll_calls(cfg, n_steps) else rolled_jit
        pad = -(n_steps - start) % chunk  # whole calls from `start` (a resume) on
        if pad:  # repeat the last batch; those steps are masked out
            batches = jnp.concatenate([batches, jnp.repeat(batches[-1:], pad, axis=0)])
        for first in range(start, n_steps, chunk):
            part = batches[first : first + chunk]
            states, metrics = program(states, *args, part, keys, active, first, n_steps)
            done = min(first + chunk, n_steps)
            yield states, _done(metrics, done, progress, keep=done - first), done

    # For tests: the accelerators' whole-epoch program, the CPU's calls of N steps.
    calls.epoch_program, calls.call_programs = whole_jit, (rolled_jit, unrolled_jit)
    return calls


def _done(metrics, done, progress, keep=None):
    """A call's metrics on the host (waiting for the call), its real steps only; then the
    progress callback."""
    out = {k: np.asarray(v)[:keep] for k, v in metrics.items()}
    if progress is not None:
        progress(done)
    return out


def finite_per_seed(loss, params):
    """[S] bool: the seed's loss and every one of its params are finite."""
    ok = jnp.isfinite(loss)
    for leaf in jax.tree.leaves(params):
        ok = ok & jnp.isfinite(leaf).reshape(leaf.shape[0], -1).all(axis=1)
    return ok


def epoch_means(metrics: dict) -> dict:
    """Per-seed means [S] of per-step metrics [steps, S]; skipped steps count out of the
    means, and "skipped" becomes the number of them."""
    skipped = metrics.get("skipped")
    out = {}
    for k, v in metrics.items():
        if k == "skipped":
            out[k] = v.sum(axis=0)
        elif skipped is not None:
            out[k] = np.ma.masked_array(v, skipped).mean(axis=0).filled(np.nan)
        else:
            out[k] = v.mean(axis=0)
    return out


def make_train_epoch(model, tx, cfg, progress=None):
    """`epoch(states, frozen, images, labels, train_idx, keys, active)` -> (states, per-seed
    mean metrics [S]): make_epoch_calls run to the end of the epoch."""
    calls = make_epoch_calls(model, tx, cfg, progress)

    def epoch(*args):
        parts = list(calls(*args))
        return parts[-1][0], epoch_means(concat_metrics([m for _, m, _ in parts]))

    return epoch


def concat_metrics(parts: list[dict]) -> dict:
    """Per-step metrics of several calls, [steps, S] each, joined along the steps."""
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
