"""The digit-sum networks equal their PyTorch references, and train the same way.

Each test builds the torch reference (bench/torch_models.py) with a seed,
ports its state_dict into the Flax model and compares outputs, or one Adam
step of each framework on the same batch.
"""

import copy

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="parity needs the torch extra (pip install -e .[dev])")
torchvision = pytest.importorskip("torchvision", reason="the VGG port needs torchvision")

from bench.torch_models import SumCNNTorch, VGGRegressorTorch  # noqa: E402
from jaxdigits import losses, models, steps  # noqa: E402
from jaxdigits.models import layers, port, vgg  # noqa: E402

CASES = {  # model name in the registry, outputs, task, port function
    "regressor": ("sum_cnn", 1, "regress", port.sum_cnn),
    "classifier": ("sum_cnn", 37, "classify", port.sum_cnn),
    "vgg": ("vgg_regressor", 1, "regress", port.vgg_regressor),
}


@pytest.fixture(scope="module")
def vgg_reference():
    """One torch VGGRegressor (building one takes seconds: 120 M parameters)."""
    torch.manual_seed(0)
    return VGGRegressorTorch().eval()


# The Adam step's VGG has a small head: the original's 100M-parameter one would make that
# test twice as slow and test nothing more (the forward parity keeps it).
SMALL_HEAD = (64, 16)


def _reference(case, seed, vgg_reference, head=None):
    if case == "vgg":
        if seed == 0 and head is None:
            return vgg_reference
        torch.manual_seed(seed)
        return VGGRegressorTorch(head=head or (4096, 256)).eval()
    torch.manual_seed(seed)
    return SumCNNTorch(CASES[case][1]).eval()


def _batch(seed, n=4):
    rng = np.random.default_rng(seed)
    x = (rng.integers(0, 256, size=(n, 1, 40, 168)) / 255.0).astype(np.float32)
    return x, rng.integers(0, 37, size=n)


def _nhwc(x):
    return jnp.asarray(x.transpose(0, 2, 3, 1))


@pytest.mark.slow
@pytest.mark.parametrize(
    "case,seed",
    [(c, s) for c in ("regressor", "classifier") for s in (0, 1, 2)] + [("vgg", 0), ("vgg", 1)],
)
def test_forward_matches_torch(case, seed, vgg_reference):
    name, outputs, _, to_flax = CASES[case]
    ref = _reference(case, seed, vgg_reference)
    x, _ = _batch(seed)
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)).numpy()
    apply = jax.jit(models.get(name, num_classes=outputs).apply)  # one program, not op by op
    got = apply(to_flax(ref.state_dict()), _nhwc(x))
    assert got.shape == expected.shape == (4, outputs)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-4, atol=1e-5 * max(scale, 1))


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_one_adam_step_moves_parameters_as_torch(case, vgg_reference):
    """One Adam step (lr 1e-3) on the same batch: the gradients equal torch's in float64, and
    each parameter moves the same way as in torch's float32 step.

    Float64 because torch's float32 convolutions are the less exact side on some CPUs (the
    VGG adapter's gradient, through eight convolutions: 7e-4 of its largest element off
    float64 on an AVX2 AMD EPYC, JAX's 3e-7). The VGG model runs in eval mode in both
    frameworks (their dropout masks cannot be made equal); its frozen features must not
    move in either.
    """
    name, outputs, task, to_flax = CASES[case]
    head = {"head": SMALL_HEAD} if case == "vgg" else {}
    ref = _reference(case, 5, vgg_reference, **head)
    x, y = _batch(5, n=8)
    before = {k: v.detach().clone() for k, v in ref.state_dict().items()}
    opt = torch.optim.Adam([p for p in ref.parameters() if p.requires_grad], lr=1e-3)

    def torch_loss(net, dtype):
        out = net(torch.from_numpy(x).to(dtype))
        if task == "regress":
            return torch.nn.functional.mse_loss(out.squeeze(), torch.from_numpy(y).to(dtype))
        return torch.nn.functional.cross_entropy(out, torch.from_numpy(y))

    exact = copy.deepcopy(ref).double()
    torch_loss(exact, torch.float64).backward()
    torch_grads = to_flax(
        {k: torch.zeros_like(p) if p.grad is None else p.grad for k, p in exact.named_parameters()}
    )["params"]
    loss = torch_loss(ref, torch.float32)
    opt.zero_grad()
    loss.backward()
    opt.step()
    torch_delta = to_flax({k: ref.state_dict()[k] - before[k] for k in before})["params"]
    ref.load_state_dict(before)  # the shared VGG fixture stays as it was

    model = models.get(name, num_classes=outputs, **head)
    params = to_flax(before)["params"]
    cfg = ml_collections.ConfigDict({"weight_decay": 0.0, "learning_rate": 1e-3})
    tx = steps.make_optimizer(cfg)
    # As the trainer holds them: the frozen features beside the trained params, not in Adam.
    params, frozen = models.split_frozen(name, params)

    def loss_fn(p):
        out = model.apply({"params": steps.apply_params(p, frozen)}, _nhwc(x))
        return losses.task_loss(task, out, jnp.asarray(y))

    loss_j, grads = jax.jit(jax.value_and_grad(loss_fn))(params)  # one program, not op by op
    np.testing.assert_allclose(float(loss_j), loss.item(), rtol=1e-5)
    flat_g = dict(jax.tree_util.tree_leaves_with_path(torch_grads))
    for path, g in jax.tree_util.tree_leaves_with_path(grads):
        if "features" not in jax.tree_util.keystr(path):  # torch computes none for frozen ones
            expected = np.asarray(flat_g[path])
            atol = 1e-5 * np.abs(expected).max()
            np.testing.assert_allclose(g, expected, rtol=1e-3, atol=atol, err_msg=str(path))
    updates, _ = tx.update(grads, tx.init(params), params)
    flat_t = dict(jax.tree_util.tree_leaves_with_path(torch_delta))
    assert set(frozen) == ({"features"} if name == "vgg_regressor" else set())
    for path, theirs in flat_t.items():  # torch's frozen features did not move either
        if "features" in jax.tree_util.keystr(path):
            assert not np.asarray(theirs).any(), f"{jax.tree_util.keystr(path)}: moved in torch"
    for path, ours in jax.tree_util.tree_leaves_with_path(updates):
        theirs, ours = np.asarray(flat_t[path]).ravel(), np.asarray(ours).ravel()
        where = jax.tree_util.keystr(path)
        cosine = ours @ theirs / (np.linalg.norm(ours) * np.linalg.norm(theirs))
        assert cosine > 0.99, f"{where}: update direction differs from torch ({cosine:.4f})"
        np.testing.assert_allclose(np.linalg.norm(ours), np.linalg.norm(theirs), rtol=0.01)


@pytest.mark.parametrize("shape", [(1, 5), (7, 7), (3, 10), (9, 4), (14, 14)])
def test_adaptive_avg_pool_matches_torch(shape):
    x = np.random.default_rng(0).normal(size=(2, 3, *shape)).astype(np.float32)
    expected = torch.nn.AdaptiveAvgPool2d((7, 7))(torch.from_numpy(x)).numpy()
    got = vgg.adaptive_avg_pool(_nhwc(x), (7, 7))
    np.testing.assert_allclose(np.asarray(got).transpose(0, 3, 1, 2), expected, atol=1e-6)


@pytest.mark.slow
def test_a_40x168_input_reaches_the_pool_as_1x5():
    x = jnp.zeros((1, 40, 168, 3))
    model = vgg.VGG11Features()
    # the shapes alone: traced, nothing computed
    out, variables = jax.eval_shape(lambda x: model.init_with_output(jax.random.PRNGKey(0), x), x)
    assert out.shape == (1, 1, 5, 512)
    assert jax.eval_shape(model.apply, variables, x).shape == (1, 1, 5, 512)


@pytest.mark.parametrize("shape", [(2, 40, 168, 3), (3, 9, 13, 2), (1, 1, 5, 4)])
def test_max_pool_matches_flax_in_values_and_gradients(shape):
    """Same values and gradients as nn.max_pool, odd sizes (floor) and ties (ReLU zeros) too."""
    rng = np.random.default_rng(1)
    x = np.maximum(rng.normal(size=shape), 0).astype(np.float32)
    x[..., 0] = np.round(x[..., 0])  # many equal values in a window

    def reference(x):
        return nn.max_pool(x, (2, 2), strides=(2, 2))

    # jitted: op by op, each primitive compiles on its own (seconds on a cold cache)
    np.testing.assert_array_equal(jax.jit(layers.max_pool)(x), jax.jit(reference)(x))
    weights = rng.normal(size=jax.eval_shape(reference, x).shape).astype(np.float32)
    grad = lambda pool: jax.jit(jax.grad(lambda x: jnp.sum(pool(x) * weights)))(x)  # noqa: E731
    np.testing.assert_array_equal(grad(layers.max_pool), grad(reference))


def test_imagenet_weights_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(FileNotFoundError) as err:
        vgg.imagenet_features()
    message = str(err.value)
    assert "vgg11-8a719046.pth" in message and "IMAGENET1K_V1" in message
    assert "--config.vgg_weights" in message
    with pytest.raises(FileNotFoundError, match="elsewhere.pth"):
        vgg.imagenet_features(str(tmp_path / "elsewhere.pth"))


@pytest.mark.slow
def test_imagenet_weights_load_from_a_path_with_a_warning(tmp_path):
    """Random VGG11 weights stand in for ImageNet's (not downloadable here): a file given by
    path loads, with a warning that it is not torchvision's IMAGENET1K_V1 file."""
    torch.manual_seed(3)
    state = torchvision.models.vgg11().state_dict()
    torch.save(state, tmp_path / "mine.pth")
    with pytest.warns(UserWarning, match="mine.pth.*not torchvision's IMAGENET1K_V1"):
        loaded = vgg.imagenet_features(str(tmp_path / "mine.pth"))
    assert sorted(loaded) == sorted(f"conv{i}" for i in (0, 3, 6, 8, 11, 13, 16, 18))
    expected = port.vgg11_features(state)
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(expected), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        loaded["conv0"]["kernel"], state["features.0.weight"].numpy().transpose(2, 3, 1, 0)
    )


@pytest.mark.slow
def test_a_hub_cache_file_that_is_not_imagenet_is_refused(tmp_path, monkeypatch):
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.manual_seed(3)
    torch.save(torchvision.models.vgg11().state_dict(), cache / vgg.WEIGHTS_FILE)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert vgg.default_weights_path() == cache / vgg.WEIGHTS_FILE
    with pytest.raises(ValueError, match="not torchvision's IMAGENET1K_V1.*download it again"):
        vgg.imagenet_features()


@pytest.mark.slow
def test_weights_of_another_network_are_refused(tmp_path):
    torch.manual_seed(0)
    wrong = tmp_path / "vgg13.pth"
    torch.save(torchvision.models.vgg13().state_dict(), wrong)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="vgg13.pth.*features.3"):
        vgg.imagenet_features(str(wrong))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="garbage.pth"):
        vgg.imagenet_features(str(garbage))
