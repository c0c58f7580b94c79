"""Device memory a training run needs, known before anything compiles.

A run that does not fit fails late, inside XLA's allocator, with a message
that names no config. `check_fits` stops it first, with the numbers and
what to change. `estimate` adds up, in bytes:

  data         the uint8 pool and int32 labels, the test set, the per-seed indices;
  state        per seed: trainable params, optimizer state (Adam's two moments of
               them), best params, early-stopping scalars; one copy of the frozen
               params (models.Model.frozen); from jax.eval_shape of the trainer's init: exact;
  activations  the larger of one train step of all seeds at config.batch_size
               and one eval batch at config.eval_batch_size.

Activations are read off the programs traced (jit's .trace), not compiled: tracing
takes a fraction of the time that compiling does. bench/check_memory_estimate.py checks
the totals against compiled.memory_analysis() for every config (how close they came:
docs/speed.md).
"""

import functools
import math
import pathlib

import jax
import jax.numpy as jnp
from jax.extend import core as jcore

from jaxdigits import models, steps
from jaxdigits.runtime import xla

MB, GB = 1 << 20, 1 << 30
MEMINFO = "/proc/meminfo"


class OutOfMemoryError(ValueError):
    """A run whose estimated memory exceeds what its device has available."""


def _nbytes(aval) -> int:
    """Bytes of an array or shape; 0 for what has none (tokens). Typed PRNG keys' dtypes say
    their own itemsize, as numpy's do."""
    shape, dtype = getattr(aval, "shape", None), getattr(aval, "dtype", None)
    return 0 if shape is None or dtype is None else math.prod(shape) * dtype.itemsize


def tree_bytes(tree) -> int:
    """Bytes of a pytree of arrays or of shapes (jax.ShapeDtypeStruct)."""
    return sum(_nbytes(x) for x in jax.tree.leaves(tree))


# XLA fuses these into the op that consumes their result (loop fusion), so their results are
# written out only where a non-fusible op (conv, dot, gather, a loop) or the output needs them.
FUSIBLE = frozenset(
    """abs add add_any and bitcast_convert_type broadcast_in_dim ceil clamp concatenate
    convert_element_type copy cos div eq erf erf_inv exp exp2 expand_dims expm1 floor ge gt
    integer_pow iota is_finite le log log1p logistic lt max min mul ne neg not or pad pow
    random_unwrap random_wrap reduce_precision rem reshape rev round rsqrt select_n shift_left
    shift_right_arithmetic shift_right_logical sign sin slice split sqrt square squeeze stack
    stop_gradient sub tan tanh transpose xor""".split()
)
# Reductions read fused inputs; their results are written out.
REDUCTIONS = frozenset("argmax argmin reduce_and reduce_max reduce_min reduce_sum".split())
FUSING = FUSIBLE | REDUCTIONS
# Ops that XLA turns into bitcasts of their operand: same buffer, no copy.
VIEWS = frozenset("reshape squeeze expand_dims".split())
SAME = frozenset("slice broadcast_in_dim dynamic_slice".split())  # views where they keep it all
# Calls that XLA inlines: their equations join the caller's.
INLINED = frozenset("checkpoint closed_call custom_jvp_call custom_vjp_call jit pjit".split())


def _flatten(jaxpr, ids: dict, sizes: list, ops: list) -> list:
    """Appends `jaxpr`'s equations to `ops` as (primitive, input ids, output ids, inner
    jaxprs), with inlined calls expanded; `ids` maps its input vars to ids, `sizes` holds each
    id's bytes. Returns the ids of its outputs (None: a constant)."""
    ids = dict(ids)
    var = lambda v: ids.get(v) if isinstance(v, jcore.Var) else None  # noqa: E731
    for eqn in jaxpr.eqns:
        ins, inner = [var(v) for v in eqn.invars], list(jcore.jaxprs_in_params(eqn.params))
        if eqn.primitive.name in INLINED and [len(j.invars) for j in inner] == [len(ins)]:
            sub = dict(zip(inner[0].invars, ins, strict=True))
            ids.update(zip(eqn.outvars, _flatten(inner[0], sub, sizes, ops), strict=True))
            continue
        outs = list(range(len(sizes), len(sizes) + len(eqn.outvars)))
        sizes += [_nbytes(v.aval) for v in eqn.outvars]
        ids.update(zip(eqn.outvars, outs, strict=True))
        ops.append((eqn.primitive.name, [i for i in ins if i is not None], outs, inner))
    return [var(v) for v in jaxpr.outvars]


def _peak(jaxpr, in_place=False) -> int:
    """Peak bytes of the values `jaxpr` makes (its inputs are someone else's), each alive from
    the op that makes it to its last use. An elementwise result whose users all fuse it costs
    nothing but keeps its operands alive while it is used (XLA recomputes it in each user);
    so does a view. An op with inner programs (a loop) costs the larger of its results and
    their peaks. `in_place`: the outputs cost nothing, as XLA writes them into donated inputs."""
    sizes = [_nbytes(v.aval) for v in jaxpr.invars]  # never counted: not made here
    ops = []
    outs = _flatten(jaxpr, {v: i for i, v in enumerate(jaxpr.invars)}, sizes, ops)
    last, users = {}, {}
    for i, (name, ins, _, _) in enumerate(ops):
        for x in ins:
            last[x] = i
            users.setdefault(x, set()).add(name)
    outputs = {x for x in outs if x is not None}
    last.update({x: len(ops) for x in outputs})
    fused = set()  # views first: a view's users and outputs are its operand's
    for name, ins, made, _ in reversed(ops):
        if len(made) == 1 and ins and sizes[made[0]] == sizes[ins[0]] and name in VIEWS | SAME:
            fused.add(made[0])
            users.setdefault(ins[0], set()).update(users.get(made[0], ()))
            outputs |= {ins[0]} if made[0] in outputs else set()
    for name, _, made, _ in ops:
        if name in FUSIBLE:
            fused.update(x for x in made if x not in outputs and users.get(x, set()) <= FUSING)
    for i in reversed(range(len(ops))):
        end = max((last.get(x, -1) for x in ops[i][2] if x in fused), default=-1)
        for x in ops[i][1]:
            last[x] = max(last[x], end)
    dying = {}
    for x, i in last.items():
        dying.setdefault(i, []).append(x)
    live = peak = 0
    held = {}
    for i, (_, _, made, inner) in enumerate(ops):
        made = [x for x in made if x in last and x not in fused and not (in_place and x in outputs)]
        sub = max((_peak(j) for j in inner), default=0)
        peak = max(peak, live + max(sum(sizes[x] for x in made), sub))
        for x in made:
            held[x] = sizes[x]
            live += sizes[x]
        for x in dying.get(i, ()):
            live -= held.pop(x, 0)
    return peak


def program_peak(jitted, args, in_place=False) -> int:
    """_peak of a jitted function's traced program, for arguments of these shapes."""
    return _peak(jitted.trace(*args).jaxpr.jaxpr, in_place)


def initial_state(config, model, tx) -> dict:
    """The trainer's per-seed state at epoch 0 (trainer._fresh_state), on random init: the VGG
    ImageNet features would replace init params of the same shapes."""
    keys = jnp.stack([jax.random.PRNGKey(s) for s in config.seeds])
    params = jax.vmap(lambda k: steps.init_params(model, k, config.data.image_size))(keys)
    params, frozen = models.split_frozen(config.model, params)
    n = len(config.seeds)
    return {
        "train": {"params": params, "opt_state": jax.vmap(tx.init)(params)},
        "frozen": jax.tree.map(lambda x: x[0], frozen),
        "best_params": jax.tree.map(jnp.copy, params),
        "best_val_loss": jnp.full((n,), jnp.inf),
        "best_epoch": jnp.zeros((n,), jnp.int32),
        "wait": jnp.zeros((n,), jnp.int32),
        "active": jnp.ones((n,), bool),
        "train_seconds": jnp.zeros((n,)),
    }


def state_shapes(config, model, tx):
    """Shapes of initial_state: nothing computed."""
    return jax.eval_shape(lambda: initial_state(config, model, tx))


def split_sizes(config, num_images: int) -> tuple[int, int]:
    """(train, validation) images per seed, as pipeline.split_indices splits them."""
    n_val = int(round(num_images * config.data.val_fraction))
    return num_images - n_val, n_val


def parts(config, num_images: int):
    """(model, optimizer) as the trainer makes them."""
    per_epoch = max(split_sizes(config, num_images)[0] // config.batch_size, 1)
    tx = steps.make_optimizer(config, per_epoch)
    return models.build(config), tx


def train_program(model, tx, config):
    """One train step of every seed, jitted with the state donated: the body of the trainer's
    epoch programs (epochs.make_epoch_calls scans or unrolls it), so what they hold per step.
    A standalone program, because those are built inside make_epoch_calls."""
    step = functools.partial(steps.train_step, model=model, tx=tx, cfg=config)
    step = steps.over_seeds(step, steps.TRAIN_STEP_AXES, steps.seed_axis(config))
    return xla.jit(step, donate_argnums=(0,))


def program_args(config, state, num_images: int, image_hw):
    """Shapes of the arguments of train_program and of steps.make_eval_batch's program (one
    eval batch): (train, eval)."""
    n, s, i32, f32 = len(config.seeds), jax.ShapeDtypeStruct, jnp.int32, jnp.float32
    b = config.eval_batch_size
    images, labels = s((num_images, *image_hw), jnp.uint8), s((num_images,), i32)
    idx, keys = s((n, config.batch_size), i32), s((n, 2), jnp.uint32)
    train = (state["train"], state["frozen"], images, labels, idx, keys)
    val = (s((n, b), i32), s((b,), f32), s((), f32), s((), f32))  # idx, mask, mean, std
    return train, (state["best_params"], state["frozen"], images, labels, *val)


def activations(config, num_images: int, image_hw) -> tuple[int, int]:
    """Estimated peak bytes of temporaries of (one train step, one eval batch) of all seeds,
    on the default backend (which picks steps.seed_axis).

    With seeds unrolled ("loop", the CPU default), one seed's programs are traced and scaled
    as XLA:CPU was measured to run them (bench/check_memory_estimate.py): every seed's step
    temporaries at once, the new state beside the old (not in place); the seeds' eval
    batches share their temporaries; with several seeds, each seed's params copied out of
    the stacked ones. With seeds vmapped, the program of all seeds is traced, its new state
    written in place.
    """
    looped = steps.seed_axis(config) == "loop"
    traced = config.copy_and_resolve_references()
    traced.seeds = tuple(config.seeds[:1] if looped else config.seeds)
    model, tx = parts(traced, num_images)
    state = state_shapes(traced, model, tx)
    train_args, eval_args = program_args(traced, state, num_images, image_hw)
    train = program_peak(train_program(model, tx, traced), train_args, in_place=not looped)
    evaluate = program_peak(steps.make_eval_batch(model, traced), eval_args)
    n = len(config.seeds)
    if not looped:
        return train, evaluate
    copies = n * tree_bytes(state["train"]["params"]) if n > 1 else 0
    return n * train + copies, evaluate + copies


def estimate(config, num_images: int, num_test_images: int, image_hw, test_hw) -> dict:
    """Bytes a run of `config` needs on its device: "total" and its parts (module doc).

    num_images: the pool (train + validation) size; image_hw: its stored (h, w); likewise
    for the test set. Traces the programs (a second or two), compiles nothing.
    """
    n = len(config.seeds)
    model, tx = parts(config, num_images)
    state = state_shapes(config, model, tx)
    n_train, n_val = split_sizes(config, num_images)
    data = {
        "pool": num_images * (math.prod(image_hw) + 4),
        "test": num_test_images * (math.prod(test_hw) + 4),
        "indices": n * (n_train + n_val) * 4,
    }
    train, evaluate = activations(config, num_images, image_hw)
    out = {
        "data": sum(data.values()),
        "state": tree_bytes(state),
        "activations": max(train, evaluate),
        "seeds": n,
        "params_per_seed": tree_bytes(state["train"]["params"]) // n,
        "opt_state_per_seed": tree_bytes(state["train"]["opt_state"]) // n,
        "train_step": train,
        "eval_batch": evaluate,
        **{f"data_{k}": v for k, v in data.items()},
    }
    out["total"] = out["data"] + out["state"] + out["activations"]
    return out


def available_bytes(device=None) -> int | None:
    """Bytes `device` (default: JAX's first) can still allocate: an accelerator's allocator limit
    less what it holds; on the CPU backend the host's MemAvailable. None where unknown."""
    device = device or jax.devices()[0]
    try:
        stats = device.memory_stats() or {}
    except Exception:  # some backends and plugins raise instead of returning None
        stats = {}
    if "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    if device.platform != "cpu":
        return None
    try:
        for line in pathlib.Path(MEMINFO).read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # the file says kB, meaning KiB
    except (OSError, ValueError, IndexError):
        pass
    return None


def size(n: int) -> str:
    """Bytes for people: MB below a GB (both powers of two)."""
    return f"{n / GB:.2f} GB" if n >= GB else f"{n / MB:.1f} MB"


def check_fits(
    config, num_images, num_test_images, image_hw, test_hw, device=None, name=None
) -> dict:
    """estimate(...), or OutOfMemoryError when it exceeds available_bytes(device).

    An unknown availability passes: the estimate is a guard, not a requirement.
    `name` (e.g. the config path) goes into the message.
    """
    est = estimate(config, num_images, num_test_images, image_hw, test_hw)
    device = device or jax.devices()[0]
    free = available_bytes(device)
    if free is not None and est["total"] > free:
        name = name or f"{config.model} on {config.data.name}"
        raise OutOfMemoryError(
            f"{name}: needs about {size(est['total'])} (data {size(est['data'])}, state "
            f"{size(est['state'])} for {est['seeds']} seed(s), activations "
            f"{size(est['activations'])} at batch_size {config.batch_size} / eval_batch_size "
            f"{config.eval_batch_size}) but {device} has {size(free)} available; try a smaller "
            f"batch_size or eval_batch_size, fewer seeds, or data.limit"
        )
    return est
