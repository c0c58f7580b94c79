"""The Flax 5conv1fc equals the PyTorch reference with ported weights."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="parity needs the torch extra (pip install -e .[dev])")

from bench.torch_models import FiveConvTorch  # noqa: E402
from jaxdigits import losses, models, steps  # noqa: E402
from jaxdigits.models import port  # noqa: E402

WEIGHTS = (2.0, 2.0, 1.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0, 1.0)
MODEL = models.get("five_conv")
# Jitted: op by op, each of the network's ops is a program of its own (seconds a call).
init = jax.jit(MODEL.init, static_argnames="train")
apply = jax.jit(MODEL.apply, static_argnames="train")


def _torch_model(seed):
    torch.manual_seed(seed)
    return FiveConvTorch().eval()


def _inputs(seed, batch=4):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, 1, 90, 120)).astype(np.float32)
    y = rng.integers(0, 10, size=batch)
    return x, y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_forward_matches_torch(seed):
    ref = _torch_model(seed)
    x, _ = _inputs(seed)
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)).numpy()
    variables = port.five_conv(ref.state_dict())
    got = apply(variables, jnp.asarray(x.transpose(0, 2, 3, 1)))
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_gradients_of_weighted_loss_match_torch():
    ref = _torch_model(3)
    x, y = _inputs(3, batch=8)
    variables = port.five_conv(ref.state_dict())
    model = models.get("five_conv")

    logits = ref(torch.from_numpy(x))
    loss_t = torch.nn.functional.cross_entropy(
        logits, torch.from_numpy(y), weight=torch.tensor(WEIGHTS)
    )
    loss_t.backward()
    expected = port.five_conv({k: p.grad for k, p in ref.named_parameters()})

    def loss_fn(params):
        out = model.apply({"params": params}, jnp.asarray(x.transpose(0, 2, 3, 1)))
        return losses.cross_entropy(out, jnp.asarray(y), jnp.asarray(WEIGHTS))

    loss_j, grads = jax.jit(jax.value_and_grad(loss_fn))(variables["params"])
    np.testing.assert_allclose(float(loss_j), loss_t.item(), rtol=1e-5)
    for (path, g), e in zip(
        jax.tree_util.tree_leaves_with_path(grads),
        jax.tree.leaves(expected["params"]),
        strict=True,
    ):
        np.testing.assert_allclose(np.asarray(g), e, rtol=1e-3, atol=1e-6, err_msg=str(path))


def test_init_matches_torch_distribution():
    """Torch-style init: weights and biases U(-b, b), b = 1/sqrt(fan_in), as torch draws them."""
    params = steps.init_seeds(MODEL, jax.random.PRNGKey(0)[None], (90, 120))  # as a run's
    params = jax.tree.map(lambda p: p[0], params)
    ref = port.five_conv(_torch_model(0).state_dict())["params"]
    for name in params:
        fan_in = int(np.prod(params[name]["kernel"].shape[:-1]))
        bound = 1 / np.sqrt(fan_in)
        for leaf in ("kernel", "bias"):
            ours, theirs = np.asarray(params[name][leaf]), ref[name][leaf]
            assert ours.shape == theirs.shape, name
            for p in (ours, theirs):  # the bound is torch's too, and filled to its edge
                assert np.abs(p).max() <= bound * (1 + 1e-6), (name, leaf)
                assert np.abs(p).max() >= bound * 0.5, (name, leaf)
            if ours.size >= 1000:  # large tensors: same spread as torch's uniform
                np.testing.assert_allclose(ours.std(), bound / np.sqrt(3), rtol=0.05)


@pytest.mark.slow
def test_dropout_is_active_only_in_training():
    x = jnp.ones((2, 90, 120, 1))
    variables = init(jax.random.PRNGKey(0), x, train=False)
    eval_a = apply(variables, x, train=False)
    eval_b = apply(variables, x, train=False)
    train_out = apply(variables, x, train=True, rngs={"dropout": jax.random.PRNGKey(1)})
    np.testing.assert_array_equal(eval_a, eval_b)
    assert not np.allclose(eval_a, train_out)
