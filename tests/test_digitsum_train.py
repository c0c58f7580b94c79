"""Digit-sum runs end to end (smoke size): several seeds in one program, tables, VGG weights."""

import json

import jax
import numpy as np
import pytest
from helpers_data import NEEDS_MNIST
from test_trainer import load_config, params_of

from jaxdigits import evaluate, models, output, saved_params, trainer

pytestmark = [pytest.mark.slow, NEEDS_MNIST]


def regressor(**overrides):
    # 3 steps per call keeps compilation short; patience is off for digit sums anyway
    return load_config("digitsum_regressor", steps_per_call=3, patience=0, **overrides)


@pytest.fixture(scope="module")
def together(tmp_path_factory):
    """Seeds 0 and 10 in one program, seeds batched the CPU's way (an unrolled loop)."""
    workdir = tmp_path_factory.mktemp("together")
    return workdir, trainer.train_and_evaluate(regressor(seeds=(0, 10)), workdir)


@pytest.mark.parametrize("seed_axis", ["loop", "vmap"])
def test_seeds_together_equal_seeds_alone(together, tmp_path, seed_axis):
    """Each seed's params and metrics do not depend on which seeds train beside it.

    `vmap` batches the seeds into grouped convolutions (what accelerators
    run), `loop` unrolls them; both must give each seed's own result.
    """
    workdir, summary = together
    if seed_axis == "vmap":
        workdir = tmp_path / "vmapped"
        summary = trainer.train_and_evaluate(regressor(seeds=(0, 10), seed_axis="vmap"), workdir)
    both = params_of(workdir)
    for i, seed in enumerate((0, 10)):
        alone_dir = tmp_path / f"alone{seed}"
        alone = trainer.train_and_evaluate(regressor(seeds=(seed,), seed_axis=seed_axis), alone_dir)
        for a, b in zip(jax.tree.leaves(both), jax.tree.leaves(params_of(alone_dir)), strict=True):
            np.testing.assert_allclose(a[i], b[0], rtol=2e-4, atol=2e-6)
        ours = summary["per_seed"][i]
        for key in ("test_accuracy", "val_accuracy", "train_accuracy"):
            assert abs(ours[key] - alone[key]) <= 0.01, (seed, key)  # a rounding flip or two
        np.testing.assert_allclose(
            output.read_metrics(workdir)[0]["loss"][i],
            output.read_metrics(alone_dir)[0]["loss"][0],
            rtol=1e-4,
        )


def test_tables_beside_the_original_and_evaluate(together):
    workdir, summary = together
    assert summary["seeds"] == [0, 10]
    for record in summary["per_seed"]:
        assert 0.0 <= record["train_accuracy"] <= 1.0
        assert record["epochs"] == 1
    tables = (workdir / output.TABLES).read_text()
    assert "Validation accuracy (cnn_regressor)" in tables and "Training accuracy" in tables
    assert "| 0 |" in tables and "| 11.42 % |" in tables and "| 22.22 % |" in tables
    ours = 100 * summary["per_seed"][1]["train_accuracy"]
    assert f"| 10 | {ours:.2f} % | 22.22 % |" in tables
    assert json.loads((workdir / "config.json").read_text())["task"] == "regress"
    result = evaluate.evaluate(workdir)
    assert result["test_accuracy"] == result["stored"]["test_accuracy"]
    assert result["test_accuracy_best"] == result["stored"]["test_accuracy_best"]
    for key in ("val_accuracy", "train_accuracy"):  # the numbers of the original's tables
        assert result[key] == result["stored"][key] == [r[key] for r in summary["per_seed"]]


def test_one_seed_restores_on_its_own(together):
    workdir, _ = together
    both = params_of(workdir)
    for which in ("best", "last"):
        ten = saved_params.seed_params(workdir, 10, which)
        for a, b in zip(jax.tree.leaves(ten), jax.tree.leaves(both), strict=True):
            np.testing.assert_array_equal(a, b[1])  # one epoch: best and last are the same
    model = models.get("sum_cnn", num_classes=1)
    assert model.apply({"params": ten}, np.zeros((2, 40, 168, 1), np.float32)).shape == (2, 1)
    with pytest.raises(ValueError, match=r"seeds \[0, 10\], not 42"):
        saved_params.seed_params(workdir, 42)


def test_classifier_smoke(tmp_path):
    config = load_config("digitsum_classifier", steps_per_call=3, patience=0, seeds=(42,))
    summary = trainer.train_and_evaluate(config, tmp_path)
    assert config.num_classes == 37 and config.task == "classify"
    assert 0.0 <= summary["test_accuracy"] <= 1.0 and "train_accuracy" in summary
    assert "cnn_classifier" in (tmp_path / output.TABLES).read_text()
    assert params_of(tmp_path)["fc3"]["kernel"].shape == (1, 128, 37)


@pytest.mark.parametrize("name", ["digitsum_regressor", "digitsum_classifier", "digitsum_vgg"])
def test_seeds_of_the_configs(name):
    assert tuple(load_config(name, arg=None).seeds) == (0, 10, 42)  # the original's table
    assert tuple(load_config(name).seeds) == (0, 10)  # :smoke keeps two


@pytest.mark.parametrize(
    "key,value",
    [
        ("task", "regression"),
        ("seed_axis", "pmap"),
        ("loss.complementary", "backward"),
        ("lr_schedule", "linear"),
    ],
)
def test_a_bad_value_stops_before_anything_is_written(tmp_path, key, value):
    config = regressor()
    config.update_from_flattened_dict({key: value})
    with pytest.raises(ValueError, match=f"config.{key}='{value}'"):
        trainer.train_and_evaluate(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_vgg_without_imagenet_weights_stops_before_training(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="IMAGENET1K_V1"):
        trainer.train_and_evaluate(load_config("digitsum_vgg"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_vgg_trains_head_and_adapter_with_features_frozen(tmp_path, monkeypatch):
    """The features stay exactly the loaded ones, held once for every seed (in the state, the
    best params and the checkpoints); the seeds, vmapped over the shared features as on an
    accelerator, each train as they would alone."""
    torch = pytest.importorskip("torch", reason="writing a .pth needs torch")
    torchvision = pytest.importorskip("torchvision", reason="a VGG11 state_dict needs it")
    from jaxdigits.models import port

    torch.manual_seed(0)  # random features stand in for ImageNet's (not downloadable here)
    # the features alone (37 MB): the classifier's 123 M parameters are never read
    state = {k: v for k, v in torchvision.models.vgg11().state_dict().items() if "features" in k}
    weights = tmp_path / "vgg11.pth"
    torch.save(state, weights)

    def config(seeds):
        c = load_config(
            "digitsum_vgg",
            vgg_weights=str(weights),
            batch_size=8,
            eval_batch_size=20,
            steps_per_call=1,
            seeds=seeds,
            seed_axis="vmap",
            vgg_head=(32, 8),  # the original's 100M-parameter head is no part of the plumbing
        )
        c.data.limit, c.data.test_limit = 50, 20  # 5 steps: it is the plumbing we test
        return c

    with pytest.warns(UserWarning, match="not torchvision's IMAGENET1K_V1"):
        summary = trainer.train_and_evaluate(config((0, 10)), tmp_path / "run")
        alone = trainer.train_and_evaluate(config((10,)), tmp_path / "alone")
    expected = port.vgg11_features(state)
    for restored in (
        saved_params.restore_best(tmp_path / "run"),
        saved_params.restore_latest(tmp_path / "run"),
    ):
        assert "features" not in restored.get(
            "best_params", restored.get("train", {}).get("params", {})
        )
        for a, b in zip(
            jax.tree.leaves(restored["frozen"]["features"]), jax.tree.leaves(expected), strict=True
        ):
            np.testing.assert_array_equal(a, b)  # one copy, no seed axis: the loaded weights
    trained, solo = params_of(tmp_path / "run"), params_of(tmp_path / "alone")
    for a, b in zip(jax.tree.leaves(trained), jax.tree.leaves(solo), strict=True):
        np.testing.assert_allclose(a[1], b[0], rtol=2e-4, atol=2e-6)  # seed 10 as alone
    assert abs(summary["per_seed"][1]["test_accuracy"] - alone["test_accuracy"]) <= 0.03
    model = models.build(config((0, 10)))
    with pytest.warns(UserWarning):
        untrained, _ = trainer._init_params(
            model, config((0, 10)), models.pretrained(config((0, 10)))
        )
    first = untrained["adapter"]["kernel"]
    assert not np.allclose(trained["adapter"]["kernel"], first)  # gradients reached it
    assert saved_params.seed_params(tmp_path / "run", 10)["features"]["conv0"]["kernel"].shape == (
        expected["conv0"]["kernel"].shape
    )

    # the checkpoint holds the features: resuming needs neither the file nor its path
    weights.unlink()
    resumed_config = config((0, 10))
    resumed_config.num_epochs, resumed_config.vgg_weights = 2, str(tmp_path / "moved.pth")
    trainer.train_and_evaluate(resumed_config, tmp_path / "run")
    frozen = saved_params.restore_latest(tmp_path / "run")["frozen"]
    np.testing.assert_array_equal(
        frozen["features"]["conv0"]["kernel"], expected["conv0"]["kernel"]
    )
