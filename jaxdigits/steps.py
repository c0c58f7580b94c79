"""Pure train and eval steps, and the jitted wrappers that run them.

One train step is written for one seed. `make_epoch_calls` scans it over
an epoch of device-resident shuffled batches (one jitted call per epoch on
accelerators, calls of a few steps on the CPU, each a point where a run
can stop and resume) and vmaps it over the seed axis, so several seeds
train in one program; `make_train_epoch` runs all the calls of an epoch.
Per-seed state is a pytree whose leaves have a leading seed axis.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdigits import losses, xla
from jaxdigits.data import pipeline


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


def make_optimizer(
    cfg, frozen: tuple[str, ...] = (), steps_per_epoch: int | None = None
) -> optax.GradientTransformation:
    """torch.optim.Adam(lr, weight_decay): L2 added to the gradient before Adam (not AdamW).

    Top-level param subtrees named in `frozen` get zero updates (and no
    Adam state): they never change, while gradients still flow through them
    to the layers below. XLA drops the unused weight gradients.
    """
    lr = learning_rate(cfg, steps_per_epoch)
    adam = optax.chain(optax.add_decayed_weights(cfg.weight_decay), optax.adam(lr))
    if not frozen:
        return adam

    def labels(params):
        return {
            k: jax.tree.map(lambda _: "frozen" if k in frozen else "train", v)  # noqa: B023
            for k, v in params.items()
        }

    return optax.multi_transform({"train": adam, "frozen": optax.set_to_zero()}, labels)


def seed_axis(cfg) -> str:
    """How per-seed work is batched: "vmap", or "loop" (one program, seeds unrolled).

    config.seed_axis "auto" picks vmap on accelerators and loop on the CPU
    backend: vmapping a conv over per-seed kernels makes it a grouped conv,
    which XLA:CPU runs 2.6x slower than the seeds one after another (3.0 s
    vs 1.15 s for a 3-seed digit-sum CNN step at batch 64, jax 0.10.2).
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
        cfg.task, outputs, labels, class_weights, complementary_loss=cfg.get("complementary_loss")
    )
    if cfg.task == "complementary" and cfg.get("selftrain_threshold", 0.0):
        selftrain = losses.self_training(outputs, labels, cfg.selftrain_threshold)
        loss = loss + cfg.selftrain_weight * selftrain
    if cfg.task == "classify" and cfg.get("expected_mse_weight", 0.0):
        loss = loss + cfg.expected_mse_weight * losses.expected_mse(outputs, labels)
    return loss


def update(state, x, y, key, *, model, tx, cfg, compute_dtype=None, axis_name=None):
    """One optimizer step of one seed on a prepared batch: x [B, H, W, 1] float, y [B]. Pure.

    `compute_dtype` (e.g. jnp.bfloat16): the forward and backward run in it
    on cast params and inputs, while the master params, the loss and the
    Adam update stay float32 (mixed precision). `axis_name`: gradients and
    metrics are averaged over that mapped axis (data parallel under pmap).
    """
    weights = jnp.asarray(cfg.class_weights, jnp.float32) if cfg.class_weights else None

    def loss_fn(params):
        if compute_dtype is not None:
            params = jax.tree.map(lambda p: p.astype(compute_dtype), params)
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


def train_step(state, images, labels, idx, key, *, model, tx, cfg, batch_sharding=None):
    """One optimizer step of one seed on the batch images[idx], prepared on the device. Pure.

    `batch_sharding` (data parallel): the batch is split over the devices
    along its first axis; XLA then all-reduces the gradients.
    """
    k_aug, k_dropout = jax.random.split(key)
    x, y = _inputs(k_aug, images[idx], cfg), labels[idx]
    if batch_sharding is not None:
        x, y = jax.lax.with_sharding_constraint((x, y), batch_sharding)
    return update(state, x, y, k_dropout, model=model, tx=tx, cfg=cfg)


def steps_per_call(cfg) -> int:
    """Train steps per jitted call; 0 means the whole epoch in one call (a lax.scan).

    config.steps_per_call: N > 0 runs calls of N unrolled steps, -1 the whole
    epoch in one call, 0 picks: the whole epoch on accelerators; calls of 10
    on the CPU backend, because XLA:CPU runs a step slower inside a while
    loop: 0.17 s in a scan against 0.13 s unrolled per 5conv1fc step at
    batch 32 (jax 0.10.2, 2 cores; 4.2 s before models.layers.conv kept the
    conv gradients on XLA's library path).
    """
    if cfg.steps_per_call:
        return max(cfg.steps_per_call, 0)
    return 10 if jax.default_backend() == "cpu" else 0


def make_epoch_calls(model, tx, cfg, progress=None, batch_sharding=None):
    """Returns `calls(states, images, labels, train_idx, keys, active, start=0)`, a generator
    that runs one epoch from step `start` and yields after every jitted call.

    states: per-seed pytree [S, ...] (donated); images/labels: the whole pool
    on the device; train_idx [S, n]: each seed's training indices; keys
    [S, 2]: each seed's key for this epoch; active [S]: seeds still training
    (stopped seeds keep their state). Each yield is `(states, metrics,
    done)`: the new states, that call's per-step metrics as numpy [steps, S]
    and the steps of the epoch done so far. A caller may stop between calls
    (a signal) and resume later from `start=done`: the batches depend only
    on the keys, so the rest of the epoch is the same. `progress(step)`, if
    given, is called on the host every `cfg.progress_every` steps (or every
    call). `batch_sharding`: see train_step.

    With config.nonfinite "skip", a seed's step whose loss or new params
    are not finite leaves that seed's state as it was (metric "skipped").
    """
    batch = cfg.batch_size
    skip_nonfinite = cfg.get("nonfinite", "stop") == "skip"
    step = functools.partial(train_step, model=model, tx=tx, cfg=cfg, batch_sharding=batch_sharding)
    step = over_seeds(step, (0, None, None, 0, 0), seed_axis(cfg))

    def seeds_step(states, images, labels, idx, keys, active):
        new, metrics = step(states, images, labels, idx, keys)
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

    def run_steps(states, images, labels, batches, keys, active, first, unroll=1):
        def body(carry, xs):
            t, idx = xs
            step_keys = jax.vmap(lambda k: jax.random.fold_in(k, t + 1))(keys)
            carry, metrics = seeds_step(carry, images, labels, idx, step_keys, active)
            if progress is not None and cfg.progress_every and unroll == 1:
                jax.lax.cond(
                    (t + 1) % cfg.progress_every == 0,
                    lambda: jax.debug.callback(progress, t + 1),
                    lambda: None,
                )
            return carry, metrics

        ts = first + jnp.arange(batches.shape[0])
        return jax.lax.scan(body, states, (ts, batches), unroll=unroll)

    chunk = steps_per_call(cfg)
    # The whole epoch in one call: the shuffle fuses into the program.
    whole_jit = xla.jit(
        lambda s, im, lb, idx, k, a: run_steps(s, im, lb, shuffle(idx, k), k, a, 0),
        donate_argnums=(0,),
    )
    shuffle_jit = xla.jit(shuffle)
    # The rest of an epoch (resumed mid-way), or a chunk unrolled completely (unroll = its
    # length), so that XLA emits no loop.
    rest_jit = xla.jit(run_steps, donate_argnums=(0,))
    chunk_jit = xla.jit(lambda *a: run_steps(*a, unroll=a[3].shape[0]), donate_argnums=(0,))

    def calls(states, images, labels, train_idx, keys, active, start=0):
        n_steps = train_idx.shape[1] // batch
        if not chunk and not start:
            states, metrics = whole_jit(states, images, labels, train_idx, keys, active)
            yield states, _host(metrics), n_steps
            return
        batches = shuffle_jit(train_idx, keys)
        if not chunk:
            states, metrics = rest_jit(states, images, labels, batches[start:], keys, active, start)
            yield states, _host(metrics), n_steps
            return
        for first in range(start, n_steps, chunk):
            part = batches[first : first + chunk]
            states, metrics = chunk_jit(states, images, labels, part, keys, active, first)
            if progress is not None:
                progress(first + part.shape[0])
            yield states, _host(metrics), first + part.shape[0]

    return calls


def finite_per_seed(loss, params):
    """[S] bool: the seed's loss and every one of its params are finite."""
    ok = jnp.isfinite(loss)
    for leaf in jax.tree.leaves(params):
        ok = ok & jnp.isfinite(leaf).reshape(leaf.shape[0], -1).all(axis=1)
    return ok


def _host(metrics):
    return {k: np.asarray(v) for k, v in metrics.items()}


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
    """`epoch(states, images, labels, train_idx, keys, active)` -> (states, per-seed mean
    metrics [S]): make_epoch_calls run to the end of the epoch."""
    calls = make_epoch_calls(model, tx, cfg, progress)

    def epoch(states, images, labels, train_idx, keys, active):
        parts = list(calls(states, images, labels, train_idx, keys, active))
        return parts[-1][0], epoch_means(concat_metrics([m for _, m, _ in parts]))

    return epoch


def concat_metrics(parts: list[dict]) -> dict:
    """Per-step metrics of several calls, [steps, S] each, joined along the steps."""
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def make_evaluate(model, cfg, decode: str = "argmax"):
    """Returns jitted `evaluate(params, images, labels, idx, mask, mean, std)`.

    params: per-seed [S, ...]; idx [S, n] (n a multiple of
    cfg.eval_batch_size, padded; mask [n] marks real entries). Returns
    per-seed mean unweighted loss [S] (cross-entropy, MSE, or the forward
    complementary loss) and integer predictions [S, n] (`decode`: see
    losses.predictions).
    """
    image_size, batch_size = tuple(cfg.data.image_size), cfg.eval_batch_size

    def one_seed(params, images, labels, idx, mask, mean, std):
        def body(_, xs):
            idx_b, mask_b = xs
            x = pipeline.preprocess(images[idx_b], image_size, mean, std)
            out = model.apply({"params": params}, x, train=False)
            loss = losses.task_loss(cfg.task, out, labels[idx_b], mask=mask_b)
            return None, (loss * jnp.sum(mask_b), losses.predictions(cfg.task, out, decode))

        xs = (idx.reshape(-1, batch_size), mask.reshape(-1, batch_size))
        _, (loss, preds) = jax.lax.scan(body, None, xs)
        return loss.sum() / mask.sum(), preds.reshape(-1)

    in_axes = (0, None, None, 0, None, None, None)
    return xla.jit(over_seeds(one_seed, in_axes, seed_axis(cfg)))


def padded(idx: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pads index rows [S, n] to a multiple of batch_size; returns (idx, mask)."""
    n = idx.shape[-1]
    pad = -n % batch_size
    mask = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
    return np.pad(idx, [(0, 0)] * (idx.ndim - 1) + [(0, pad)], mode="edge"), mask
