"""memory_estimate: the estimate's exact parts, the guard, and the bench that measures it."""

import json
import pathlib

import jax
import jax.numpy as jnp
import pytest

from bench import check_memory_estimate as bench_memory
from jaxdigits import defaults, models, steps
from jaxdigits.runtime import memory_estimate

ROOT = pathlib.Path(__file__).resolve().parents[1]
# (pool, test set, pool h x w, test h x w) of the :smoke configs
SMOKE = {
    "part3": (720, 500, (28, 28), (28, 28)),
    "digitsum_regressor": (720, 500, (40, 168), (40, 168)),
}
# The trainer's early-stopping scalars per seed: best_val_loss, best_epoch, wait, active,
# train_seconds (float32, int32, int32, bool, float32).
SCALAR_BYTES = 4 + 4 + 4 + 1 + 4


def _smoke(name):
    return defaults.from_file(ROOT / "configs" / f"{name}.py", "smoke")


def _nbytes(tree):
    return sum(x.nbytes for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("name", sorted(SMOKE))
def test_state_bytes_equal_the_real_initialised_state(name):
    """Params and Adam state initialised for real, as the trainer does, weigh exactly what the
    estimate says: params, optimizer state, best params and the scalars, for every seed."""
    c = _smoke(name)
    shape = SMOKE[name]
    est = memory_estimate.estimate(c, *shape)
    n_train, _ = memory_estimate.split_sizes(c, shape[0])
    model = models.build(c)
    tx = steps.make_optimizer(c, n_train // c.batch_size)
    keys = jnp.stack([jax.random.PRNGKey(s) for s in c.seeds])
    params = steps.init_seeds(model, keys, c.data.image_size)
    params, frozen = models.split_frozen(c.model, params)
    opt_state = jax.jit(jax.vmap(tx.init))(params)
    n = len(c.seeds)
    frozen_bytes = _nbytes(frozen) // n  # one copy for all seeds
    assert est["params_per_seed"] * n == _nbytes(params)
    assert est["opt_state_per_seed"] * n == _nbytes(opt_state)
    assert est["state"] == (
        2 * _nbytes(params) + frozen_bytes + _nbytes(opt_state) + n * SCALAR_BYTES
    )
    assert (
        est["data"]
        == 720 * (shape[2][0] * shape[2][1] + 4)
        + 500 * (shape[3][0] * shape[3][1] + 4)
        + n * 720 * 4
    )
    assert est["activations"] == max(est["train_step"], est["eval_batch"]) > 0
    assert est["total"] == est["data"] + est["state"] + est["activations"]


def test_frozen_features_have_no_optimizer_state_and_one_copy():
    """The VGG regressor's Adam moments cover its trainable params only, and its frozen
    features are held once, not per seed (shapes, no init)."""
    c = defaults.from_file(ROOT / "configs" / "digitsum_vgg.py", "smoke")
    assert len(c.seeds) > 1
    model, tx = memory_estimate.parts(c, 720)
    state = memory_estimate.state_shapes(c, model, tx)
    trainable = state["train"]["params"]
    assert "features" not in trainable and set(state["frozen"]) == {"features"}
    counts = 4 * len(c.seeds)  # Adam's step count, int32 per seed
    assert memory_estimate.tree_bytes(
        state["train"]["opt_state"]
    ) == 2 * memory_estimate.tree_bytes(trainable) + (counts)
    init = jax.eval_shape(lambda: steps.init_params(model, jax.random.PRNGKey(0), (40, 168)))
    assert memory_estimate.tree_bytes(state["frozen"]) == memory_estimate.tree_bytes(
        init["features"]
    )


@pytest.mark.slow
def test_check_fits_raises_one_line_with_the_numbers(monkeypatch, tmp_path):
    """A host with 1 MB available (MemAvailable, the CPU backend's figure) cannot take the
    smoke config: the error names it, the estimate and its parts, what is available and what
    to change."""
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 2048 kB\nMemAvailable:    1024 kB\n")
    monkeypatch.setattr(memory_estimate, "MEMINFO", str(meminfo))
    c = _smoke("part3")
    if jax.devices()[0].platform == "cpu":
        assert memory_estimate.available_bytes() == 1 << 20
    else:
        monkeypatch.setattr(memory_estimate, "available_bytes", lambda device=None: 1 << 20)
    est = memory_estimate.estimate(c, *SMOKE["part3"])
    with pytest.raises(memory_estimate.OutOfMemoryError) as info:
        memory_estimate.check_fits(c, *SMOKE["part3"], name="configs/part3.py:smoke")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("configs/part3.py:smoke: needs about ")
    for part in ("total", "data", "state", "activations"):
        assert memory_estimate.size(est[part]) in message
    assert "1.0 MB available" in message
    assert "batch_size" in message and "fewer seeds" in message and "data.limit" in message
    assert isinstance(info.value, ValueError)


def test_check_fits_passes_the_smoke_config_with_the_real_memory():
    est = memory_estimate.check_fits(_smoke("part3"), *SMOKE["part3"])
    available = memory_estimate.available_bytes()
    assert available is None or 0 < est["total"] <= available


def test_available_bytes_of_an_accelerator_is_its_limit_less_its_use():
    class Device:
        platform = "gpu"

        def __init__(self, stats):
            self.stats = stats

        def memory_stats(self):
            return self.stats

    assert memory_estimate.available_bytes(Device({"bytes_limit": 100, "bytes_in_use": 30})) == 70
    assert memory_estimate.available_bytes(Device(None)) is None


def test_peak_writes_out_only_what_xla_would():
    """Elementwise chains feeding a reduction are fused (only the scalar is written); a matmul's
    result and a non-fused input of the next matmul are."""
    x = jax.ShapeDtypeStruct((256, 512), jnp.float32)
    fused = jax.jit(lambda a: (jnp.exp(a) * 2 + 1).sum())
    assert memory_estimate.program_peak(fused, (x,)) == 4
    mlp = jax.jit(lambda a, w: jnp.tanh(a @ w) @ w)
    assert memory_estimate.program_peak(
        mlp, (x, jax.ShapeDtypeStruct((512, 512), jnp.float32))
    ) == (2 * 256 * 512 * 4)


@pytest.mark.slow
def test_bench_writes_a_row_with_measured_bytes(tmp_path):
    """One smoke config end to end: estimate, compiled programs, the JSON and Markdown rows."""
    results = bench_memory.main(
        ["--configs", "digitsum_regressor", "--smoke", "--out", str(tmp_path)]
    )
    (row,) = results["rows"]
    assert row["status"] == "ok", row
    assert row["train"]["temp"] > 0 and row["eval"]["temp"] > 0
    assert row["xla_total"] > row["estimate"]["state"] > 0
    (path,) = tmp_path.glob("*-memory-smoke.json")
    assert json.loads(path.read_text())["environment"]["versions"]["jax"] == jax.__version__
    line = next(x for x in path.with_suffix(".md").read_text().splitlines() if "regressor" in x)
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[0] == "digitsum_regressor:smoke"
    assert float(cells[8].replace(",", "")) > 0  # XLA total, MB
