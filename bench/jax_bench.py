"""JAX training steps to time, one per mode, all built on jaxdigits.steps.update.

Modes:
  step    one jitted step per call (the state donated), a Python loop of steps
  fused   the steps of a timed call fused in one jitted lax.scan over device-resident batches
          (unrolled on the CPU backend, as the trainer runs long runs there)
  dp_jit  data parallel, the default sharding path: jit over a device mesh, the batch
          sharded on its leading axis, the state replicated (XLA inserts the all-reduce)
  dp_pmap data parallel with jax.pmap and an explicit pmean of the gradients
Each builder returns `run()`, which trains the given steps and blocks until they are done.
"""

import functools

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxdigits import models, steps
from jaxdigits.runtime import xla

MODES = ("step", "fused", "dp_jit", "dp_pmap")
DTYPES = {"f32": None, "bf16": jnp.bfloat16}


class Unavailable(Exception):
    """A mode that cannot run here; the message says why."""


def _setup(model, params, cfg, precision):
    """(update, state): the trainer's step on a state that carries the frozen params (one
    copy, as the trainer holds them) beside the trained ones."""
    tx = steps.make_optimizer(cfg)
    params, frozen = models.split_frozen(cfg.model, jax.tree.map(jnp.asarray, params))

    def update(state, x, y, key, axis_name=None):
        train = {"params": state["params"], "opt_state": state["opt_state"]}
        new, metrics = steps.update(
            train,
            x,
            y,
            key,
            model=model,
            tx=tx,
            cfg=cfg,
            frozen=state["frozen"],
            compute_dtype=DTYPES[precision],
            axis_name=axis_name,
        )
        return {**new, "frozen": state["frozen"]}, metrics

    return update, {"params": params, "opt_state": tx.init(params), "frozen": frozen}


def build(mode, model, params, cfg, x, y, precision="f32"):
    """run() for `mode`; x [steps, B, H, W, 1] and y [steps, B] are the batches of one call.

    run.params() returns the params after the calls so far (for tests: every mode trains
    the same way)."""
    update, state = _setup(model, params, cfg, precision)
    box = [state]
    run = _runner(mode, update, box, x, y)

    def current():
        p = {**box[0]["params"], **box[0]["frozen"]}
        return jax.tree.map(lambda a: a[0], p) if mode == "dp_pmap" else p

    run.params = current
    return run


def _runner(mode, update, state_box, x, y):
    state = state_box[0]
    n_steps = x.shape[0]
    keys = jax.random.split(jax.random.PRNGKey(0), n_steps)

    def looped(step, xs, ys, ks):
        def run():
            s = state_box[0]
            for t in range(n_steps):
                s, _ = step(s, xs[t], ys[t], ks[t])
            state_box[0] = jax.block_until_ready(s)

        return run

    if mode == "step":
        step = xla.jit(update, donate_argnums=0)
        xs, ys = [jnp.asarray(a) for a in x], [jnp.asarray(a) for a in y]
        return looped(step, xs, ys, list(keys))

    if mode == "fused":
        # Unrolled on the CPU backend, as the trainer's calls of long runs there
        # (epochs.unroll_calls): XLA:CPU runs a step slower inside a while loop.
        unroll = n_steps if jax.default_backend() == "cpu" else 1

        @functools.partial(xla.jit, donate_argnums=0)
        def fused(s, xs, ys, ks):
            return jax.lax.scan(lambda c, b: update(c, *b), s, (xs, ys, ks), unroll=unroll)

        xs, ys = jnp.asarray(x), jnp.asarray(y)

        def run():
            state_box[0] = jax.block_until_ready(fused(state_box[0], xs, ys, keys)[0])

        return run

    n = jax.local_device_count()
    if x.shape[1] % n:
        raise Unavailable(f"batch {x.shape[1]} does not split over {n} devices")

    if mode == "dp_jit":
        # Auto axes: XLA's sharding propagation (GSPMD) places the collectives; explicit
        # axes would put shardings in the types and ask each reshape to name its own.
        mesh = jax.make_mesh((n,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
        rep, shard = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
        step = xla.jit(
            update,
            in_shardings=(rep, shard, shard, rep),
            out_shardings=(rep, rep),
            donate_argnums=0,
        )
        state_box[0] = jax.device_put(state, rep)
        xs = [jax.device_put(a, shard) for a in x]
        ys = [jax.device_put(a, shard) for a in y]
        return looped(step, xs, ys, [jax.device_put(k, rep) for k in keys])

    if mode == "dp_pmap":
        step = jax.pmap(
            functools.partial(update, axis_name="data"), axis_name="data", donate_argnums=0
        )
        state_box[0] = jax.tree.map(lambda a: jnp.broadcast_to(a, (n, *a.shape)), state)

        def split(a):
            return a.reshape(n, a.shape[0] // n, *a.shape[1:])

        xs, ys = [split(a) for a in x], [split(a) for a in y]
        ks = [jax.random.split(k, n) for k in keys]
        return looped(step, xs, ys, ks)

    raise ValueError(f"unknown JAX mode {mode!r}; known: {', '.join(MODES)}")


def flops_per_image(model, params, cfg, x, y) -> float | None:
    """Training FLOPs per image of one float32 step, from XLA's cost analysis (None where the
    backend gives none)."""
    update, state = _setup(model, params, cfg, "f32")
    lowered = xla.jit(update).lower(state, x[0], y[0], jax.random.PRNGKey(0))
    cost = lowered.compile().cost_analysis()
    if isinstance(cost, list | tuple):  # older jax: one dict per program
        cost = cost[0] if cost else None
    flops = (cost or {}).get("flops")
    return float(flops) / x.shape[1] if flops and flops > 0 else None
