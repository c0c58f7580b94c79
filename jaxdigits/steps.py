"""Pure train and eval steps, the optimizer, and the jitted evaluation.

One train step is written for one seed; `over_seeds` maps it over the seed
axis (vmapped or looped), so several seeds train in one program, and
`jaxdigits.epochs` runs it over an epoch. Per-seed state is a pytree whose
leaves have a leading seed axis. Frozen param subtrees (models.Model.frozen:
the VGG regressor's ImageNet features) are one copy, no seed axis, passed
beside the state (`frozen`) and mapped with in_axes None: vmapped seeds then
share one dense convolution.
"""

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


def init_seeds(model, keys, image_size):
    """Every seed's fresh params [S, ...] from keys [S, 2], as one program (xla.jit_once): op by
    op, the initialisers compile a hundred small programs (seconds)."""
    return xla.jit_once(jax.vmap(lambda k: init_params(model, k, image_size)))(keys)


def _inputs(key, images_u8, cfg):
    """uint8 batch -> normalised float input, randomly shifted (config.data.shift), closed up
    (config.data.squeeze) and with Part 1's augmentation when enabled."""
    if cfg.data.get("shift", 0):
        key, k_shift = jax.random.split(key)
        images_u8 = pipeline.random_shift(k_shift, images_u8, cfg.data.shift)
    if cfg.data.get("squeeze", False):
        key, k_squeeze = jax.random.split(key)
        images_u8 = pipeline.squeeze_columns(k_squeeze, images_u8)
    if not cfg.data.augment:
        return pipeline.preprocess(images_u8, cfg.data.image_size, cfg.data.mean, cfg.data.std)
    return _augmented(key, images_u8, cfg)


def _augmented(key, images_u8, cfg):
    """Part 1's augmentation (rotation, translation, blur, noise: config.data's settings);
    also the strong view of self-training (config.loss.selftrain_view "strong")."""
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


def strong_view(cfg) -> bool:
    """Whether each training batch also goes through the network strongly augmented."""
    return cfg.task == "complementary" and cfg.loss.get("selftrain_view", "same") == "strong"


def train_loss(cfg, outputs, labels, class_weights=None, strong=None):
    """The task's loss, plus the optional terms: self-training (complementary task; on the
    `strong` view's outputs when given), the squared error of the expected class index
    (classify)."""
    loss = losses.task_loss(
        cfg.task, outputs, labels, class_weights, complementary_loss=cfg.loss.complementary
    )
    terms = cfg.loss
    if cfg.task == "complementary" and terms.selftrain_threshold:
        threshold = terms.selftrain_threshold
        selftrain = losses.self_training(outputs, labels, threshold, student_logits=strong)
        loss = loss + terms.selftrain_weight * selftrain
    if cfg.task == "classify" and terms.expected_mse_weight:
        loss = loss + terms.expected_mse_weight * losses.expected_mse(outputs, labels)
    return loss


def update(state, x, y, key, *, model, tx, cfg, frozen=None, compute_dtype=None, axis_name=None):
    """One optimizer step of one seed on a prepared batch: x [B, H, W, 1] float, y [B]. Pure.
    With a strong view (strong_view(cfg)) x is [2B, ...]: the batch, then its strong view.

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
        out, strong = (out[: len(y)], out[len(y) :]) if strong_view(cfg) else (out, None)
        return train_loss(cfg, out, y, weights, strong), out

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
    if strong_view(cfg):  # one forward pass over both views; fold_in keeps k_aug's draws
        x = jnp.concatenate([x, _augmented(jax.random.fold_in(k_aug, 1), images[idx], cfg)])
    if batch_sharding is not None:
        x, y = jax.lax.with_sharding_constraint((x, y), batch_sharding)
    dtype = compute_dtype(cfg)
    return update(
        state, x, y, k_dropout, model=model, tx=tx, cfg=cfg, frozen=frozen, compute_dtype=dtype
    )


# in_axes of train_step over seeds: state, key and batch indices per seed; the rest shared.
TRAIN_STEP_AXES = (0, None, None, None, 0, 0)


def one_pixel_shifts(images_u8):
    """uint8 [B, h, w] -> [9, B, h, w]: the images and their 8 shifts by one pixel (across,
    down, both), filling with 0."""
    _, h, w = images_u8.shape
    padded = jnp.pad(images_u8, ((0, 0), (1, 1), (1, 1)))
    return jnp.stack([padded[:, y : y + h, x : x + w] for y in range(3) for x in range(3)])


def vote_over_shifts(logits):
    """Logits [9, B, classes] of one_pixel_shifts' views -> int32 [B]: the argmax of their mean
    probabilities (the `shifts` decode)."""
    return jnp.argmax(jnp.mean(jax.nn.softmax(logits, -1), 0), -1).astype(jnp.int32)


def make_eval_batch(model, cfg, decodes=("argmax",)):
    """The jitted program of one eval batch of every seed:
    `(params, frozen, images, labels, idx, mask, mean, std)` -> (loss sum [S], predictions).

    params: per-seed [S, ...]; idx [S, B] with B = cfg.eval_batch_size;
    mask [B] marks real entries. The loss is the task's unweighted loss
    (cross-entropy, MSE, or the forward complementary loss) summed over
    the real entries; predictions, one [S, B] int array per decode (see
    losses.predictions), come from one forward pass; "shifts" adds one pass over the 8
    one-pixel shifts of the batch.
    """
    image_size, dtype = tuple(cfg.data.image_size), compute_dtype(cfg)

    def one_seed(params, frozen, images, labels, idx, mask, mean, std):
        full = apply_params(params, frozen, dtype)

        def forward(images_u8):
            x = pipeline.preprocess(images_u8, image_size, mean, std)
            x = x if dtype is None else x.astype(dtype)
            return model.apply({"params": full}, x, train=False).astype(jnp.float32)

        out = forward(images[idx])
        loss = losses.task_loss(cfg.task, out, labels[idx], mask=mask) * jnp.sum(mask)

        def read(decode):
            if decode != "shifts":
                return losses.predictions(cfg.task, out, decode)
            views = one_pixel_shifts(images[idx])
            logits = forward(views.reshape(-1, *views.shape[2:]))
            return vote_over_shifts(logits.reshape(*views.shape[:2], -1))

        return loss, tuple(read(d) for d in decodes)

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
