"""validate.check: a config with an unknown key, a wrong type or an impossible value stops with
one line naming the key, before any data is read; every shipped config passes."""

import math
import pathlib
import subprocess
import sys

import pytest

from jaxdigits import data, defaults, trainer
from jaxdigits.data import digits, digitsum, mnist
from jaxdigits.runtime import validate

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG_FILES = sorted(p.stem for p in (ROOT / "configs").glob("*.py"))
ARGS = (None, "smoke", "pretrained", "smoke,pretrained")  # defaults.args accepts each


DELETE = object()


def tree(name="part3", arg="smoke", **changes):
    """A shipped config as a dict (so that any type can go in) with changes: `data__limit` is
    config.data.limit; the value DELETE removes the key."""
    out = defaults.from_file(ROOT / "configs" / f"{name}.py", arg).to_dict()
    for path, value in changes.items():
        *groups, key = path.split("__")
        node = out
        for group in groups:
            node = node[group]
        if value is DELETE:
            del node[key]
        else:
            node[key] = value
    return out


def rejects(config, key: str) -> str:
    with pytest.raises(validate.ConfigError) as info:
        validate.check(config)
    message = str(info.value)
    assert message.startswith(f"config.{key}") and "\n" not in message, message
    return message


def test_the_schema_comes_from_the_studies_and_the_plugins():
    assert {"batch_size", "data.limit", "loss.class_weights"} <= set(validate.SCHEMA)
    digitsum_keys = {k for k in validate._plugin_keys() if k.startswith("data.")}
    assert digitsum_keys == {
        "data.size",
        "data.test_size",
        "data.generator_seed",
        "data.extra_tests",
    }
    assert not digitsum_keys & set(validate.SCHEMA)  # required only where data.name is digitsum
    assert validate._plugin_keys()["vgg_weights"] == ""
    known = set(validate.SCHEMA) | set(validate._plugin_keys())
    assert set(validate.AT_LEAST) <= known  # no bound on a renamed key
    for path, default in validate.SCHEMA.items():  # every sequence's elements are checked
        if isinstance(default, (tuple, list)):
            assert default or path in validate.EMPTY_DEFAULT_ELEMENTS, path


def test_data_names_are_the_registered_datasets():
    assert list(data.DATASETS) == ["mislabeled", "mnist", "digits", "digitsum"]
    rejects(tree(data__name="cifar"), "data.name")


@pytest.mark.parametrize("arg", ARGS)
@pytest.mark.parametrize("name", CONFIG_FILES)
def test_every_shipped_config_passes_without_reading_data(name, arg, monkeypatch):
    def no_data(*args, **kwargs):
        raise AssertionError("check read data")

    for module, function in ((mnist, "load"), (digitsum, "generate"), (digits, "load_sklearn")):
        monkeypatch.setattr(module, function, no_data)
    monkeypatch.delenv("JAXDIGITS_DATA_DIR", raising=False)
    config = defaults.from_file(ROOT / "configs" / f"{name}.py", arg)
    validate.check(config)
    validate.check(config.to_dict())


@pytest.mark.parametrize(
    "name, changes",
    [
        ("part3", {"steps_per_call": -1, "loss__selftrain_threshold": 0.0, "learning_rate": 1}),
        ("part3", {"batch_size": 648}),  # :smoke's 720 images, 72 of them for validation
        ("part3", {"seeds": [3, 1, 2], "loss__class_weights": [1] * 10}),  # lists, ints as numbers
        ("part1", {"batch_size": 5000, "data__limit": 0}),  # digits: size known once loaded
        ("part3", {"data__path": "mnistTask3.zip", "batch_size": 5000, "data__limit": 0}),
        ("digitsum_vgg", {"model": "sum_cnn"}),  # vgg_weights left over
        ("digitsum_columns", {"data__extra_tests": ("quarters-6", "anywhere-1")}),
    ],
)
def test_valid_edge_values_pass(name, changes):
    validate.check(tree(name, **changes))


@pytest.mark.parametrize(
    "name, changes, key, also",
    [
        ("part3", {"bacth_size": 64}, "bacth_size", "did you mean config.batch_size?"),
        ("part3", {"data__limt": 5}, "data.limt", "did you mean config.data.limit?"),
        ("part3", {"val_fraction": 0.2}, "val_fraction", "config.data.val_fraction?"),
        ("part3", {"zzz_qqq": 1}, "zzz_qqq", "unknown key"),
        ("part3", {"batch_size": DELETE}, "batch_size", "missing"),
        ("digitsum_regressor", {"data__size": DELETE}, "data.size", "missing"),
        ("digitsum_vgg", {"vgg_weights": DELETE}, "vgg_weights", "vgg_regressor"),
        ("part3", {"data": "mnist"}, "data", "group of keys"),
    ],
)
def test_unknown_and_missing_keys(name, changes, key, also):
    assert also in rejects(tree(name, **changes), key)


@pytest.mark.parametrize(
    "path, value, rule",
    [
        ("batch_size", True, "an int"),
        ("batch_size", 2.5, "an int"),
        ("batch_size", None, "an int"),
        ("learning_rate", "0.1", "a number"),
        ("learning_rate", math.nan, "finite"),
        ("data__mean", math.inf, "finite"),
        ("eval_train_split", 1, "a bool"),
        ("model", 5, "a string"),
        ("compute_dtype", 16, "a string"),
        ("seeds", 0, "a tuple"),
        ("seeds", (0, 1.5), "tuple of ints"),
        ("seeds", (0, True), "tuple of ints"),
        ("data__image_size", (28, 28.0), "tuple of ints"),
        ("loss__class_weights", (1.0, "2") + (1.0,) * 8, "tuple of numbers"),
        ("loss__class_weights", (math.inf,) + (1.0,) * 9, "finite"),
    ],
)
def test_wrong_types(path, value, rule):
    assert rule in rejects(tree(**{path: value}), path.replace("__", "."))


def test_wrong_types_that_config_dict_lets_through():
    config = defaults.from_file(ROOT / "configs" / "part3.py", "smoke")
    config.batch_size = True  # ConfigDict takes a bool for an int, and None for anything
    rejects(config, "batch_size")
    config = defaults.from_file(ROOT / "configs" / "part3.py", "smoke")
    config.data.name = None
    rejects(config, "data.name")


def test_extra_tests_take_strings():
    rejects(tree("digitsum_columns", data__extra_tests=("anywhere-4", 4)), "data.extra_tests")


@pytest.mark.parametrize(
    "path, value",
    [
        ("seeds", ()),
        ("seeds", (0, 0)),
        ("seeds", (-1,)),
        ("num_epochs", 0),
        ("batch_size", 0),
        ("eval_batch_size", 0),
        ("learning_rate", 0.0),
        ("learning_rate", -1e-3),
        ("weight_decay", -1e-4),
        ("patience", -1),
        ("steps_per_call", -2),
        ("loss__selftrain_weight", -1.0),
        ("loss__expected_mse_weight", -0.1),
        ("loss__selftrain_threshold", 1.0),
        ("loss__selftrain_threshold", -0.1),
        ("num_classes", 0),
        ("data__val_fraction", 0.0),
        ("data__val_fraction", 1.0),
        ("data__limit", -1),
        ("data__test_limit", -1),
        ("data__label_seed", -1),
        ("data__image_size", (28,)),
        ("data__image_size", (0, 28)),
        ("data__image_size", (28, 28, 1)),
        ("data__std", 0.0),
        ("data__test_std", -1.0),
        ("data__shift", -1),
        ("loss__class_weights", (1.0, 1.0, 1.0)),
        ("loss__class_weights", (-1.0,) + (1.0,) * 9),
        ("task", "regression"),
        ("loss__complementary", "backward"),
        ("loss__selftrain_view", "weak"),
        ("init_params", "first"),
        ("seed_axis", "pmap"),
        ("lr_schedule", "linear"),
        ("model", "resnet"),
        ("data__name", "cifar"),
        ("original", "cnn"),
        ("compute_dtype", "float16"),
        ("decodes", ()),
        ("decodes", ("argmin",)),
        ("decodes", ("argmax", "argmax")),
        ("decodes", ("argmax", "median")),
    ],
)
def test_impossible_values(path, value):
    message = rejects(tree(**{path: value}), path.replace("__", "."))
    assert f"={value!r}:" in message  # the value, then what is allowed


@pytest.mark.parametrize(
    "name, changes, key, numbers",
    [
        ("digitsum_regressor", {"num_classes": 37}, "num_classes", "must be 1"),
        ("digitsum_classifier", {"num_classes": 10}, "num_classes", ">= 37"),
        ("part3_complementary", {"num_classes": 1}, "num_classes", ">= 10"),
        ("digitsum_regressor", {"data__size": 0}, "data.size", ">= 1"),
        ("digitsum_regressor", {"data__test_size": 0}, "data.test_size", ">= 1"),
        ("digitsum_regressor", {"data__generator_seed": -1}, "data.generator_seed", ">= 0"),
        ("digitsum_columns", {"data__extra_tests": ("sideways-4",)}, "data.extra_tests", "1..6"),
        ("digitsum_columns", {"data__extra_tests": ("anywhere-7",)}, "data.extra_tests", "1..6"),
        ("digitsum_columns", {"data__extra_tests": ("anywhere-0",)}, "data.extra_tests", "1..6"),
        ("digitsum_columns", {"data__extra_tests": ("anywhere",)}, "data.extra_tests", "1..6"),
        ("part3", {"data__extra_tests": ("anywhere-4",)}, "data.extra_tests", "digitsum"),
        # the splits: 720 smoke images, 10 % validation
        ("part3", {"batch_size": 649}, "batch_size", "648 of 720 images (config.data.limit)"),
        ("part3", {"data__limit": 30}, "batch_size", "27 of 30"),
        ("part3", {"data__limit": 4, "batch_size": 1}, "data.val_fraction", "0 of 4"),
        ("part2", {"batch_size": 54_001, "data__limit": 0}, "batch_size", "54000 of 60000"),
        ("part2", {"data__val_fraction": 1e-6, "data__limit": 0}, "data.val_fraction", "60000"),
        ("digitsum_regressor", {"data__size": 50}, "batch_size", "40 of 50 images"),
    ],
)
def test_impossible_combinations(name, changes, key, numbers):
    assert numbers in rejects(tree(name, **changes), key)


def test_splits_agree_with_the_trainer():
    """check rejects a data.limit exactly where trainer._splits would, after loading."""
    config = defaults.from_file(ROOT / "configs" / "part3.py", "smoke")
    refused = []
    for limit in range(30, 40):  # batch 32, 10 % validation
        config.data.limit = limit
        try:
            trainer._splits(limit, config)
        except ValueError:
            refused.append(limit)
            with pytest.raises(validate.ConfigError, match="config.batch_size=32"):
                validate.check(config)
        else:
            validate.check(config)
    assert refused == list(range(30, 36)), refused  # 35 - round(3.5) = 31; 36 - 4 = 32


def train_cli(tmp_path, *args):
    return subprocess.run(
        [sys.executable, "-m", "jaxdigits.train", *args, "--workdir", str(tmp_path / "run")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


TYPO_CONFIG = """
from jaxdigits import defaults


def get_config(arg=None):
    c = defaults.mislabeled(arg)
    c.bacth_size = 64
    return defaults.smoke(c)
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, names",
    [
        (["--config", "configs/part3.py:smoke", "--config.num_epochs=-1"], ["num_epochs"]),
        (["--config", "TYPO"], ["bacth_size", "batch_size"]),  # a user's config file
        (["--config", "configs/part3.py:smoke", "--config.bacth_size=3"], ["bacth_size"]),
    ],
)
def test_cli_stops_with_one_line_before_writing(tmp_path, args, names):
    typo = tmp_path / "typo.py"
    typo.write_text(TYPO_CONFIG)
    result = train_cli(tmp_path, *(str(typo) if a == "TYPO" else a for a in args))
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert all(name in lines[0] for name in names), lines[0]
    assert not (tmp_path / "run").exists()
