"""Device pipeline and losses: splits, resize/normalise, weighted cross-entropy, CLI errors."""

import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from jaxdigits import losses
from jaxdigits.data import pipeline


def test_split_is_a_partition_fixed_by_seed():
    train, val = pipeline.split_indices(1000, 0.1, seed=3)
    assert len(val) == 100 and len(train) == 900
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(1000))
    again = pipeline.split_indices(1000, 0.1, seed=3)
    np.testing.assert_array_equal(again[1], val)
    assert not np.array_equal(pipeline.split_indices(1000, 0.1, seed=4)[1], val)


def test_preprocess_resizes_and_normalises():
    images = np.full((2, 28, 28), 100, np.uint8)
    x = pipeline.preprocess(jnp.asarray(images), (90, 120), 20.0, 40.0)
    assert x.shape == (2, 90, 120, 1) and x.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(x), 2.0, rtol=1e-6)  # (100 - 20) / 40


@pytest.mark.slow
def test_augment_keeps_shape_and_changes_images():
    import jax

    images = jnp.asarray(np.random.default_rng(0).uniform(0, 255, (4, 90, 120)), jnp.float32)
    kwargs = dict(rotation_deg=30.0, translate=0.1, noise_std=0.1, mean=10.0, std=50.0)
    a = pipeline.augment(jax.random.PRNGKey(0), images, **kwargs)
    b = pipeline.augment(jax.random.PRNGKey(1), images, **kwargs)
    assert a.shape == (4, 90, 120, 1)
    assert not np.allclose(a, b)
    assert np.isfinite(np.asarray(a)).all()


def test_weighted_cross_entropy_matches_torch():
    torch = pytest.importorskip("torch", reason="needs the torch extra")
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(16, 10)).astype(np.float32)
    labels = rng.integers(0, 10, 16)
    weights = rng.uniform(0.5, 2.0, 10).astype(np.float32)
    expected = torch.nn.functional.cross_entropy(
        torch.from_numpy(logits), torch.from_numpy(labels), weight=torch.from_numpy(weights)
    ).item()
    got = losses.cross_entropy(jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(weights))
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)
    # a mask drops examples as if they were not in the batch
    masked = losses.cross_entropy(
        jnp.asarray(logits),
        jnp.asarray(labels),
        jnp.asarray(weights),
        mask=jnp.asarray([1.0] * 8 + [0.0] * 8),
    )
    head = losses.cross_entropy(
        jnp.asarray(logits[:8]), jnp.asarray(labels[:8]), jnp.asarray(weights)
    )
    np.testing.assert_allclose(float(masked), float(head), rtol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, message",
    [
        (["--config", "configs/part3.py:smok"], "unknown config arg"),
        (["--config", "configs/part3.py:smoke", "--config.nosuchkey=3"], "unknown config key"),
        (
            ["--config", "configs/part3.py:smoke", "--config.data.path=/no/such.zip"],
            "/no/such.zip: no such folder or zip file",
        ),
    ],
)
def test_train_cli_fails_with_a_clear_message(args, message, tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run(
        [sys.executable, "-m", "jaxdigits.train", *args, "--workdir", str(tmp_path / "run")],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.slow
def test_one_scan_per_epoch_equals_unrolled_chunks():
    """The accelerator path (one lax.scan per epoch) and the CPU path (chunks, rolled or
    unrolled) agree."""
    import jax
    import ml_collections

    from jaxdigits import epochs, models, steps

    cfg = ml_collections.ConfigDict(
        dict(
            batch_size=8,
            learning_rate=1e-3,
            weight_decay=1e-4,
            task="classify",
            seed_axis="auto",
            loss=dict(
                class_weights=(2.0, 1.0, 1.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0, 1.0),
                complementary="forward",
                selftrain_threshold=0.0,
                selftrain_weight=1.0,
                expected_mse_weight=0.0,
            ),
            data=dict(augment=False, image_size=(28, 28), mean=30.0, std=70.0),
        )
    )
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.integers(0, 256, (64, 28, 28), dtype=np.uint8))
    labels = jnp.asarray(rng.integers(0, 10, 64).astype(np.int32))
    train_idx = jnp.asarray(np.stack([np.arange(56), np.arange(8, 64)]).astype(np.int32))
    keys = jnp.stack([jax.random.PRNGKey(0), jax.random.PRNGKey(10)])
    active = jnp.asarray([True, False])  # the second seed has stopped
    # the small 28x28 network: what is compared is the epoch's program, not the network
    model, tx = models.get("mnist_cnn"), steps.make_optimizer(cfg)

    def run(steps_per_call, num_epochs=1):
        cfg.steps_per_call, cfg.num_epochs = steps_per_call, num_epochs
        params = steps.init_seeds(model, keys, (28, 28))
        state = {"params": params, "opt_state": jax.vmap(tx.init)(params)}
        epoch = epochs.make_train_epoch(model, tx, cfg)
        return epoch(state, {}, images, labels, train_idx, keys, active)

    scan_state, scan_m = run(-1)
    # 7 steps: 3 + 3 + 1 (padded to 3), rolled (a short run) and unrolled (a long one)
    for num_epochs in (1, epochs.UNROLL_FROM_STEPS):
        chunk_state, chunk_m = run(3, num_epochs)
        for a, b in zip(jax.tree.leaves(scan_state), jax.tree.leaves(chunk_state), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(scan_m["loss"], chunk_m["loss"], rtol=1e-4)
    fresh = steps.init_seeds(model, keys, (28, 28))
    for a, b in zip(jax.tree.leaves(fresh), jax.tree.leaves(scan_state["params"]), strict=True):
        np.testing.assert_array_equal(a[1], b[1])  # the stopped seed did not move
