"""The epoch programs as accelerators run them, lowered on the CPU: no host round trip per
step, frozen weights shared by the seeds, bf16 compute."""

import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdigits import defaults, epochs, models, steps
from jaxdigits.runtime import memory_estimate, validate

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Custom calls of jax.debug.callback, io_callback and pure_callback (StableHLO, then HLO), and
# conditionals (lax.cond, lax.switch).
CALLBACK = re.compile(r'custom_call @\w*callback|custom_call_target="\w*callback')
CONDITIONAL = re.compile(r"stablehlo\.(if|case)\b|\bconditional\(")


def host_syncs(jitted, *args) -> list[str]:
    """The host callbacks and conditionals of a jitted program, lowered and compiled."""
    lowered = jitted.lower(*args)
    texts = (lowered.as_text(), lowered.compile().as_text())
    return [m.group(0) for t in texts for p in (CALLBACK, CONDITIONAL) for m in p.finditer(t)]


def test_host_syncs_finds_a_progress_callback_in_a_loop():
    """What the epoch program had before: a callback every N steps behind a lax.cond."""

    def loop(x):
        def body(c, t):
            jax.lax.cond(t % 2 == 0, lambda: jax.debug.callback(print, t), lambda: None)
            return c * 2.0, None

        return jax.lax.scan(body, x, jnp.arange(4))[0]

    found = host_syncs(jax.jit(loop), 1.0)
    assert any("callback" in f for f in found) and any("callback" not in f for f in found)
    assert (
        host_syncs(jax.jit(lambda x: jax.lax.scan(lambda c, t: (c * 2, None), x, None, 4)[0]), 1.0)
        == []
    )


@pytest.fixture
def accelerator(monkeypatch):
    """jax.default_backend() answers "gpu": the trainer picks what it picks there (the whole
    epoch in one call, seeds vmapped, the models' non-CPU paths), compiled for the CPU."""
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")


def _epoch_inputs(cfg, model, tx, n_images=96):
    rng = np.random.default_rng(0)
    h, w = 28, 28
    images = jnp.asarray(rng.integers(0, 256, (n_images, h, w), dtype=np.uint8))
    labels = jnp.asarray(rng.integers(0, cfg.num_classes, n_images).astype(np.int32))
    n = len(cfg.seeds)
    keys = jnp.stack([jax.random.PRNGKey(s) for s in cfg.seeds])
    params = steps.init_seeds(model, keys, cfg.data.image_size)
    params, frozen = models.split_frozen(cfg.model, params)
    frozen = jax.tree.map(lambda x: x[0], frozen)
    state = {"params": params, "opt_state": jax.vmap(tx.init)(params)}
    train_idx = jnp.asarray(np.stack([np.arange(n_images)] * n).astype(np.int32))
    return state, frozen, images, labels, train_idx, keys, jnp.ones((n,), bool)


def _part3(**changes):
    cfg = defaults.from_file(ROOT / "configs" / "part3.py", "smoke")
    cfg.update(changes)
    return cfg


@pytest.mark.slow
def test_accelerator_epoch_has_no_host_callback_and_no_conditional(accelerator):
    """The whole epoch is one while loop with no host callback and no conditional anywhere:
    on XLA:GPU a conditional in a loop copies its predicate to the host every step, and a
    callback waits for the host. A progress callback given to the trainer stays on the host."""
    cfg = _part3()
    assert epochs.steps_per_call(cfg) == 0 and steps.seed_axis(cfg) == "vmap"
    model, tx = models.get(cfg.model), steps.make_optimizer(cfg)
    seen = []
    calls = epochs.make_epoch_calls(model, tx, cfg, progress=seen.append)
    args = _epoch_inputs(cfg, model, tx)
    assert "stablehlo.while" in calls.epoch_program.lower(*args).as_text()  # one rolled loop
    assert host_syncs(calls.epoch_program, *args) == []
    # and it runs: one call per epoch, progress reported once, after the call
    parts = list(calls(*args))
    assert len(parts) == 1 and seen == [96 // cfg.batch_size]
    assert parts[0][1]["loss"].shape == (96 // cfg.batch_size, len(cfg.seeds))


@pytest.mark.slow
def test_cpu_chunks_compile_one_program_and_report_progress_after_each(monkeypatch):
    """Calls of N steps on the CPU: the epoch's shorter last call runs the same program
    (padded, the padding masked out), and progress follows the calls that have finished."""
    cfg = _part3(steps_per_call=2)
    model, tx = models.get(cfg.model), steps.make_optimizer(cfg)
    seen = []
    calls = epochs.make_epoch_calls(model, tx, cfg, progress=seen.append)
    args = _epoch_inputs(cfg, model, tx, n_images=5 * cfg.batch_size)  # 5 steps: 2 + 2 + 1
    parts = list(calls(*args))
    assert seen == [2, 4, 5] and [d for *_, d in parts] == [2, 4, 5]
    assert [m["loss"].shape[0] for _, m, _ in parts] == [2, 2, 1]
    compiled = [program._cache_size() for program in calls.call_programs]
    assert sum(compiled) == 1  # one compiled program for 2, 2 and 1 steps


@pytest.mark.slow
@pytest.mark.parametrize("num_epochs, unrolled", [(1, False), (epochs.UNROLL_FROM_STEPS, True)])
def test_cpu_calls_are_unrolled_only_in_long_runs(num_epochs, unrolled):
    """Unrolled steps run faster on XLA:CPU but compile slower: a short run stays rolled."""
    cfg = _part3(steps_per_call=2, num_epochs=num_epochs)
    model, tx = models.get(cfg.model), steps.make_optimizer(cfg)
    calls = epochs.make_epoch_calls(model, tx, cfg)
    args = _epoch_inputs(cfg, model, tx, n_images=2 * cfg.batch_size)
    rolled, unrolled_program = calls.call_programs
    list(calls(*args))
    assert (rolled._cache_size(), unrolled_program._cache_size()) == (
        (0, 1) if unrolled else (1, 0)
    )


def test_vmapped_seeds_share_the_frozen_features_in_dense_convolutions():
    """The VGG regressor's frozen ImageNet features are one copy (in_axes None): vmapped over
    seeds, each of their convolutions takes the seeds' images as one batch with one kernel,
    not a grouped convolution of per-seed copies. Only the trained 1x1 adapter is per seed."""
    cfg = defaults.from_file(ROOT / "configs" / "digitsum_vgg.py", "smoke")
    cfg.seed_axis = "vmap"
    n = len(cfg.seeds)
    assert n > 1
    model, tx = memory_estimate.parts(cfg, 720)
    state = memory_estimate.state_shapes(cfg, model, tx)
    assert "features" not in state["train"]["params"] and "features" in state["frozen"]
    train_args, _ = memory_estimate.program_args(cfg, state, 720, (40, 168))
    text = memory_estimate.train_program(model, tx, cfg).lower(*train_args).as_text()
    convs = re.findall(r"stablehlo\.convolution.*", text)
    three_by_three = [c for c in convs if re.search(r"tensor<3x3x\d+x\d+x", c)]
    assert len(three_by_three) >= 8  # the 8 feature convs forward, and their input gradients
    for conv in three_by_three:
        assert "feature_group_count = 1 " in conv and "batch_group_count = 1 " in conv, conv
        assert f"tensor<{n * cfg.batch_size}x" in conv  # the seeds' batches folded into one


@pytest.mark.slow
def test_bfloat16_compute_keeps_float32_master_params():
    """config.compute_dtype "bfloat16": convolutions run in bf16, the params and Adam's
    moments stay float32, and the epoch lands near the float32 one."""
    results = {}
    for dtype in ("float32", "bfloat16"):
        cfg = _part3(compute_dtype=dtype, steps_per_call=-1)
        validate.check(cfg)
        model, tx = models.get(cfg.model), steps.make_optimizer(cfg)
        calls = epochs.make_epoch_calls(model, tx, cfg)
        args = _epoch_inputs(cfg, model, tx, n_images=64)
        text = calls.epoch_program.lower(*args).as_text()
        convs = re.findall(r"stablehlo\.convolution.*", text)
        want = "bf16" if dtype == "bfloat16" else "f32"
        assert convs and all(f"x{want}>" in c for c in convs), dtype
        [(state, metrics, _)] = list(calls(*args))
        assert {str(a.dtype) for a in jax.tree.leaves(state)} == {"float32", "int32"}
        results[dtype] = metrics["loss"]
    np.testing.assert_allclose(results["bfloat16"], results["float32"], rtol=0.05)
