"""Pure train and eval steps, and the jitted wrappers that run them.

One train step is written for one seed. `make_epoch_calls` scans it over
an epoch of device-resident shuffled batches (one jitted call per epoch on
accelerators, calls of a few steps on the CPU, each a point where a run
can stop and resume) and vmaps it over the seed axis, so several seeds
train in one program; `make_train_epoch` runs all the calls of an epoch.
Per-seed state is a pytree whose leaves have a leading seed axis. Frozen
param subtrees (models.Model.frozen: the VGG regressor's ImageNet features) are
one copy, no seed axis, passed beside the state (`frozen`) and mapped with
in_axes None: vmapped seeds then share one dense convolution.

An epoch program has no host callback and no conditional: on XLA:GPU a
conditional in a loop copies its predicate to the host every iteration,
and a host callback is a synchronisation (and keeps the program out of the
compilation cache). Progress is reported on the host between calls.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdigits import losses
from jaxdigits.data import pipeline
from jaxdigits.runtime import xla


def learning_rate(cfg, steps_per_epoch: int | None = None):
    """config.learning_rate, constant, or (config.lr_schedule "cosine") decayed to 0 along a
    cosine over config.num_epochs epochs of `steps_per_epoch` steps."""
    if cfg.get("lr_schedule", "constant") == "constant":
        return cfg.learning_rate
    if cfg.lr_schedule != "cosine":
        raise ValueError(f"config.lr_schedule={cfg.lr_schedule!r}: use constant or cosine")
    if not steps_per_epoch:
        raise ValueError("a cosine learning rate needs the number of steps per epoch")
    return optax.cosine_decay_schedule(cfg.learning_rate, cfg.num_epochs * steps_per_epoch)


def make_optimizer(cfg, steps_per_epoch: int | None = None) -> optax.GradientTransformation:
    """torch.optim.Adam(lr, weight_decay): L2 added to the gradient before Adam (not AdamW).

    It updates the trainable params only: frozen subtrees are not in its
    params (see `update`), so they have no Adam state.
    """
    lr = learning_rate(cfg, steps_per_epoch)
    return optax.chain(optax.add_decayed_weights(cfg.weight_decay), optax.adam(lr))


COMPUTE_DTYPES = {"float32": None, "bfloat16": jnp.bfloat16}


def compute_dtype(cfg):
    """config.compute_dtype as a jnp dtype, None for float32 (the faithful setting)."""
    name = cfg.get("compute_dtype", "float32")
    if name not in COMPUTE_DTYPES:
        raise ValueError(f"config.compute_dtype={name!r}: use {' or '.join(COMPUTE_DTYPES)}")
    return COMPUTE_DTYPES[name]


def apply_params(params, frozen, dtype=None):
    """The model's whole params: the trainable ones and the frozen subtrees, cast to the
    compute dtype (None: as they are)."""
    full = {**params, **(frozen or {})}
    if dtype is None:
        return full
    return jax.tree.map(
        lambda p: p.astype(dtype) if jnp.issubdtype(p.dtype, jnp.floating) else p, full
    )


def seed_axis(cfg) -> str:
    """How per-seed work is batched: "vmap", or "loop" (one program, seeds unrolled).

    config.seed_axis "auto" picks vmap on accelerators and loop on the CPU
    backend: vmapping a conv over per-seed kernels makes it a grouped conv,
    which XLA:CPU runs slower than the seeds one after another (figures in
    docs/speed.md).
    """
    if cfg.seed_axis == "auto":
        return "loop" if jax.default_backend() == "cpu" else "vmap"
    if cfg.seed_axis not in ("vmap", "loop"):
        raise ValueError(f"config.seed_axis={cfg.seed_axis!r}: use auto, vmap or loop")
    return cfg.seed_axis


def over_seeds(fn, in_axes, how: str):
    """`fn` mapped over the leading seed axis of the arguments whose in_axes is 0."""
    if how == "vmap":
        return jax.vmap(fn, in_axes=in_axes)

    def looped(*args):
        n = jax.tree.leaves(args[in_axes.index(0)])[0].shape[0]
        outs = [
            fn(
                *(
                    jax.tree.map(lambda x: x[i], a) if ax == 0 else a  # noqa: B023
                    for a, ax in zip(args, in_axes, strict=True)
                )
            )
            for i in range(n)
        ]
        return jax.tree.map(lambda *xs: jnp.stack(xs), *outs)

    return looped


def init_params(model, key, image_size):
    return model.init({"params": key}, jnp.zeros((1, *image_size, 1)), train=False)["params"]


def _inputs(key, images_u8, cfg):
    """uint8 batch -> normalised float input, randomly shifted (config.data.shift) and with
    Part 1's augmentation when enabled."""
    if cfg.data.get("shift", 0):
        key, k_shift = jax.random.split(key)
        images_u8 = pipeline.random_shift(k_shift, images_u8, cfg.data.shift)
    if not cfg.data.augment:
        return pipeline.preprocess(images_u8, cfg.data.image_size, cfg.data.mean, cfg.data.std)
    x = pipeline.preprocess(images_u8, cfg.data.image_size, 0.0, 1.0)[..., 0]
    return pipeline.augment(
        key,
        x,
        rotation_deg=cfg.data.rotation_deg,
        translate=cfg.data.translate,
        noise_std=cfg.data.noise_std,
        mean=cfg.data.mean,
        std=cfg.data.std,
    )


def train_loss(cfg, outputs, labels, class_weights=None):
    """The task's loss, plus the optional terms: self-training (complementary task), the
    squared error of the expected class index (classify)."""
    loss = losses.task_loss(
        cfg.task, outputs, labels, class_weights, complementary_loss=cfg.loss.complementary
    )
    terms = cfg.loss
    if cfg.task == "complementary" and terms.selftrain_threshold:
        selftrain = losses.self_training(outputs, labels, terms.selftrain_threshold)
        loss = loss + terms.selftrain_weight * selftrain
    if cfg.task == "classify" and terms.expected_mse_weight:
        loss = loss + terms.expected_mse_weight * losses.expected_mse(outputs, labels)
    return loss


def update(state, x, y, key, *, model, tx, cfg, frozen=None, compute_dtype=None, axis_name=None):
    """One optimizer step of one seed on a prepared batch: x [B, H, W, 1] float, y [B]. Pure.

    `frozen`: param subtrees held constant (no gradient, no Adam state);
    gradients still flow through them to the layers below. `compute_dtype`
    (e.g. jnp.bfloat16): the forward and backward run in it on cast params
    and inputs, while the master params, the loss and the Adam update stay
    float32 (mixed precision). `axis_name`: gradients and metrics are
    averaged over that mapped axis (data parallel under pmap).
    """
    weights = cfg.loss.class_weights
    weights = jnp.asarray(weights, jnp.float32) if weights else None

    def loss_fn(params):
        params = apply_params(params, frozen, compute_dtype)
        xin = x if compute_dtype is None else x.astype(compute_dtype)
        out = model.apply({"params": params}, xin, train=True, rngs={"dropout": key})
        out = out.astype(jnp.float32)
        return train_loss(cfg, out, y, weights), out

    (loss, out), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
    metrics = {"loss": loss, "accuracy": jnp.mean(losses.predictions(cfg.task, out) == y)}
    if axis_name is not None:
        grads, metrics = jax.lax.pmean((grads, metrics), axis_name)
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    new_state = {"params": optax.apply_updates(state["params"], updates), "opt_state": opt_state}
    return new_state, metrics


def train_step(state, frozen, images, labels, idx, key, *, model, tx, cfg, batch_sharding=None):
    """One optimizer step of one seed on the batch images[idx], prepared on the device. Pure.

    `batch_sharding` (data parallel): the batch is split over the devices
    along its first axis; XLA then all-reduces the gradients.
    """
    k_aug, k_dropout = jax.random.split(key)
    x, y = _inputs(k_aug, images[idx], cfg), labels[idx]
    if batch_sharding is not None:
        x, y = jax.lax.with_sharding_constraint((x, y), batch_sharding)
    dtype = compute_dtype(cfg)
    return update(
        state, x, y, k_dropout, model=model, tx=tx, cfg=cfg, frozen=frozen, compute_dtype=dtype
    )


# in_axes of train_step over seeds: state, key and batch indices per seed; the rest shared.
TRAIN_STEP_AXES = (0, None, None, None, 0, 0)


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


def make_eval_batch(model, cfg, decodes=("argmax",)):
    """The jitted program of one eval batch of every seed:
    `(params, frozen, images, labels, idx, mask, mean, std)` -> (loss sum [S], predictions).

    params: per-seed [S, ...]; idx [S, B] with B = cfg.eval_batch_size;
    mask [B] marks real entries. The loss is the task's unweighted loss
    (cross-entropy, MSE, or the forward complementary loss) summed over
    the real entries; predictions, one [S, B] int array per decode (see
    losses.predictions), come from one forward pass.
    """
    image_size, dtype = tuple(cfg.data.image_size), compute_dtype(cfg)

    def one_seed(params, frozen, images, labels, idx, mask, mean, std):
        x = pipeline.preprocess(images[idx], image_size, mean, std)
        x = x if dtype is None else x.astype(dtype)
        out = model.apply({"params": apply_params(params, frozen, dtype)}, x, train=False)
        out = out.astype(jnp.float32)
        loss = losses.task_loss(cfg.task, out, labels[idx], mask=mask) * jnp.sum(mask)
        return loss, tuple(losses.predictions(cfg.task, out, d) for d in decodes)

    in_axes = (0, None, None, None, 0, None, None, None)
    return xla.jit(over_seeds(one_seed, in_axes, seed_axis(cfg)))


def make_evaluate(model, cfg, decodes=("argmax",)):
    """Returns `evaluate(params, frozen, images, labels, idx, mean, std)` -> (mean loss [S],
    predictions: one numpy [S, n] per decode), for per-seed index rows idx [S, n].

    It runs make_eval_batch's program batch by batch (the last one padded), so every split
    and test set of one image pool shares one compiled program.
    """
    program = make_eval_batch(model, cfg, decodes)
    size = cfg.eval_batch_size

    def evaluate(params, frozen, images, labels, idx, mean, std):
        n = idx.shape[-1]
        idx, mask = padded(np.asarray(idx), size)
        loss, preds = 0.0, []
        for b in range(0, idx.shape[-1], size):  # dispatched asynchronously, read at the end
            loss_b, preds_b = program(
                params, frozen, images, labels, idx[:, b : b + size], mask[b : b + size], mean, std
            )
            loss, preds = loss + loss_b, preds + [preds_b]
        preds = tuple(np.concatenate(p, axis=1)[:, :n] for p in zip(*preds, strict=True))
        return np.asarray(loss) / n, preds

    return evaluate


def padded(idx: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pads index rows [S, n] to a multiple of batch_size; returns (idx, mask)."""
    n = idx.shape[-1]
    pad = -n % batch_size
    mask = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
    return np.pad(idx, [(0, 0)] * (idx.ndim - 1) + [(0, pad)], mode="edge"), mask
