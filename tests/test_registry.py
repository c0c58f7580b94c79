"""A network and a dataset from outside the package, registered and trained through the public
path (docs/extending.md): the checks know their keys, the trainer their frozen part and
their test sets, and evaluate reads the run back."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdigits import data, defaults, evaluate, models, saved_params, trainer
from jaxdigits.runtime import validate

pytestmark = pytest.mark.slow  # trains


class Toy(nn.Module):
    """A frozen random projection, then a trained linear layer."""

    num_classes: int = 4

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = x.reshape(x.shape[0], -1)
        x = jnp.tanh(nn.Dense(16, name="projection")(x))
        return nn.Dense(self.num_classes, name="head")(x)


def _stripes(n, seed):
    """Images whose label is the row band (of 4) that is bright: easy to learn."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n).astype(np.int32)
    images = rng.integers(0, 40, (n, 8, 8)).astype(np.uint8)
    for i, label in enumerate(labels):
        images[i, 2 * label : 2 * label + 2] = 255
    return images, labels


def _toy_extra(cfg, name):
    if name != "noisy":
        raise ValueError(name)
    images, labels = _stripes(cfg.toy_size // 2, 7)
    return np.clip(images.astype(int) + 60, 0, 255).astype(np.uint8), labels


@pytest.fixture
def registered():
    kernel = np.random.default_rng(0).normal(0, 0.2, (64, 16)).astype(np.float32)
    projection = {"kernel": kernel, "bias": np.zeros(16, np.float32)}
    loaded = []

    def pretrained(config):
        loaded.append(config.toy_projection_scale)
        return {"projection": jax.tree.map(lambda x: x * config.toy_projection_scale, projection)}

    models.register(
        "toy",
        models.Model(
            Toy,
            frozen=("projection",),
            config_keys={"toy_projection_scale": 1.0},
            resumable=("toy_projection_scale",),
            pretrained=pretrained,
        ),
    )
    data.register(
        "stripes",
        data.Dataset(
            pool=lambda cfg: (*_stripes(cfg.toy_size, 0), None),
            test=lambda cfg: _stripes(cfg.toy_size // 2, 1),
            num_labels=4,
            config_keys={"toy_size": 400},
            pool_size=lambda cfg: (cfg.toy_size, "config.data.toy_size"),
            extra_test=_toy_extra,
            extra_test_rule=lambda name: None if name == "noisy" else f"{name!r} is not 'noisy'",
        ),
    )
    yield loaded
    models.MODELS.pop("toy")
    data.DATASETS.pop("stripes")


def toy_config():
    c = defaults.mislabeled()
    c.model, c.num_classes, c.toy_projection_scale = "toy", 4, 2.0
    c.seeds, c.batch_size, c.num_epochs, c.patience = (0, 3), 16, 2, 0
    c.learning_rate = 1e-2
    c.loss.class_weights = ()
    c.eval_batch_size = 100
    c.data.name, c.data.image_size = "stripes", (8, 8)
    c.data.mean, c.data.std = c.data.test_mean, c.data.test_std = 0.0, 255.0
    c.data.toy_size = 400
    c.data.extra_tests = ("noisy",)
    return c


def test_a_registered_model_and_dataset_train_evaluate_and_resume(registered, tmp_path):
    summary = trainer.train_and_evaluate(toy_config(), tmp_path)
    assert registered == [2.0]  # the pretrained part, loaded once
    assert [r["test_accuracy"] > 0.9 for r in summary["per_seed"]] == [True, True]
    assert all("test_accuracy_noisy" in r for r in summary["per_seed"])
    result = evaluate.evaluate(tmp_path)
    assert result["test_accuracy"] == [r["test_accuracy"] for r in summary["per_seed"]]
    # the frozen projection is the one loaded, untouched by training, once for all seeds

    best = saved_params.restore_best(tmp_path)
    kernel = 2 * np.random.default_rng(0).normal(0, 0.2, (64, 16)).astype(np.float32)
    np.testing.assert_array_equal(best["frozen"]["projection"]["kernel"], kernel)
    assert "projection" not in best["best_params"]
    # a resumed run may move its model's resumable key; nothing is loaded again
    resumed = toy_config()
    resumed.toy_projection_scale = 3.0
    trainer.train_and_evaluate(resumed, tmp_path)
    assert registered == [2.0]


def test_the_checks_know_the_plugins_keys(registered):
    validate.check(toy_config())
    c = toy_config().to_dict()
    del c["toy_projection_scale"]
    with pytest.raises(
        validate.ConfigError, match="config.toy_projection_scale: missing; model 'toy'"
    ):
        validate.check(c)
    c = toy_config().to_dict()
    c["data"]["toy_sise"] = 3
    with pytest.raises(validate.ConfigError, match="did you mean config.data.toy_size"):
        validate.check(c)
    c = toy_config()
    c.data.extra_tests = ("clean",)
    with pytest.raises(validate.ConfigError, match="'clean' is not 'noisy'"):
        validate.check(c)
    c = toy_config()
    c.num_classes = 3
    with pytest.raises(validate.ConfigError, match="must be >= 4 \\(the labels of stripes\\)"):
        validate.check(c)
    c = toy_config()
    c.batch_size = 400
    with pytest.raises(validate.ConfigError, match="360 of 400 images \\(config.data.toy_size\\)"):
        validate.check(c)


def test_register_takes_only_its_own_kind():
    with pytest.raises(TypeError, match="models.Model"):
        models.register("toy", Toy)
    with pytest.raises(TypeError, match="data.Dataset"):
        data.register("stripes", _stripes)
