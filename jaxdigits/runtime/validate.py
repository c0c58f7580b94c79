"""check(config): every key and value of a training config, before any data is read.

A typo in a config file (`c.bacth_size = 64`) is otherwise a new key that
nothing reads, and a bad value fails only after the data is built and the
step is traced, or (config.original, data.extra_tests) after training.
The schema is what `defaults.base()` and `defaults.digitsum()` define: the
type of a key's default is the type its value must have.
"""

import difflib
import math
import numbers
from collections.abc import Mapping

import ml_collections

from jaxdigits import data, defaults, losses, models, steps
from jaxdigits.data import digitsum, pipeline
from jaxdigits.report import originals
from jaxdigits.runtime import interrupt, parallel

MNIST_TRAIN = 60_000  # images in MNIST train: the pool of "mnist" and a generated "mislabeled"
NUM_DIGIT_CLASSES = 10  # labels 0..9 of the MNIST-like sets
DIGIT_WIDTH = 28  # an MNIST digit: data.extra_tests canvases fit WIDTH // 28 side by side
# Keys outside the schema that one model reads (configs/digitsum_vgg.py sets this one): that
# model needs them; with another model they are left over, as after --config.model=sum_cnn.
MODEL_KEYS = {"vgg_regressor": {"vgg_weights": ""}}
EXTRA_KEYS = {k: v for keys in MODEL_KEYS.values() for k, v in keys.items()}
# Element types of sequence keys whose defaults are all empty.
EMPTY_DEFAULT_ELEMENTS = {"data.extra_tests": ""}
# Lower bounds: a key below its bound is an error.
AT_LEAST = {
    **dict.fromkeys(("num_classes", "batch_size", "eval_batch_size", "num_epochs"), 1),
    **dict.fromkeys(("weight_decay", "patience"), 0),
    "steps_per_call": -1,  # -1: the whole epoch per call, 0: auto, N: N steps
    "selftrain_weight": 0,
    "expected_mse_weight": 0,
    "data.label_seed": 0,  # numpy's default_rng takes no negative seed
    **dict.fromkeys(("data.limit", "data.test_limit", "data.shift", "data.generator_seed"), 0),
    **dict.fromkeys(("data.size", "data.test_size"), 1),
}


class ConfigError(ValueError):
    """A config key or value no run can use; the message is one line naming the key."""


def _flatten(tree: Mapping, groups, prefix=""):
    """(dotted key, value) pairs; only keys the schema knows as groups are descended into."""
    for key, value in tree.items():
        path = prefix + str(key)
        if path in groups and isinstance(value, Mapping):
            yield from _flatten(value, groups, path + ".")
        else:
            yield path, value


def _schema():
    """{dotted key: default} over base() and digitsum(), the groups, and the digit-sum keys."""
    base, dsum = (f(None).to_dict() for f in (defaults.base, defaults.digitsum))
    groups = {k for k, v in {**base, **dsum}.items() if isinstance(v, Mapping)}
    flat_base, flat_dsum = dict(_flatten(base, groups)), dict(_flatten(dsum, groups))
    schema = {**flat_dsum, **flat_base}
    for path, default in schema.items():  # a non-empty default tells the element type
        if isinstance(default, (tuple, list)) and not default:
            schema[path] = flat_base.get(path) or flat_dsum[path]
    return schema, groups, set(flat_dsum) - set(flat_base)


SCHEMA, GROUPS, DIGITSUM_KEYS = _schema()
DIGITSUM_NAME = defaults.digitsum(None).data.name


def _error(path, value, rule):
    raise ConfigError(f"config.{path}={value!r}: {rule}")


def _fits(value, default) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, numbers.Integral):
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if isinstance(default, numbers.Real):  # an int is fine where a float is expected
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    return isinstance(value, type(default))


def _type_name(default) -> str:
    """What a key with this default takes: bool, int, number or string."""
    for kind, name in ((bool, "bool"), (numbers.Integral, "int"), (numbers.Real, "number")):
        if isinstance(default, kind):
            return name
    return "string" if isinstance(default, str) else type(default).__name__


def _check_keys(values: dict):
    """A key nothing reads is most likely a typo; a missing one fails deep in training."""
    for path in values:
        if path not in SCHEMA and path not in GROUPS and path not in EXTRA_KEYS:
            close = difflib.get_close_matches(path, [*SCHEMA, *EXTRA_KEYS], n=1)
            hint = f"did you mean config.{close[0]}?" if close else "see defaults.base()"
            raise ConfigError(f"config.{path}: unknown key; {hint}")
    for group in GROUPS & set(values):
        _error(group, values[group], "must be a group of keys (a ConfigDict)")
    needs = {path: "every run needs it (see defaults.base())" for path in SCHEMA}
    for path in DIGITSUM_KEYS:  # needed by the digit-sum data only
        needs.pop(path)
        if values.get("data.name") == DIGITSUM_NAME:
            needs[path] = f"data.name {DIGITSUM_NAME!r} needs it (see defaults.digitsum())"
    model = values.get("model")
    for path in MODEL_KEYS.get(model, {}) if isinstance(model, str) else ():
        needs[path] = f"model {model!r} needs it (see configs/)"
    for path in sorted(needs.keys() - values.keys()):
        raise ConfigError(f"config.{path}: missing; {needs[path]}")


def _check_types(values: dict):
    """ConfigDict casts a bool to an int and takes None anywhere; a dict takes anything."""
    for path, value in values.items():
        default = SCHEMA.get(path, EXTRA_KEYS.get(path))
        items = value if isinstance(value, (tuple, list)) else (value,)
        if isinstance(default, (tuple, list)):
            element = default[0] if default else EMPTY_DEFAULT_ELEMENTS.get(path)
            if not isinstance(value, (tuple, list)):
                _error(path, value, "must be a tuple")
            if element is not None and not all(_fits(x, element) for x in value):
                _error(path, value, f"must be a tuple of {_type_name(element)}s")
        elif not _fits(value, default):
            name = _type_name(default)
            _error(path, value, f"must be {'an' if name[0] in 'aeiou' else 'a'} {name}")
        if any(isinstance(x, numbers.Real) and not math.isfinite(x) for x in items):
            _error(path, value, "must be finite")


def _check_names(values: dict):
    """Values that must be one of the names the modules know."""
    known = {
        "task": losses.TASKS,
        "complementary_loss": losses.COMPLEMENTARY_LOSSES,
        "model": tuple(models.MODELS),
        "data.name": data.NAMES,
        "original": ("", *originals.DIGITSUM),
        "nonfinite": interrupt.NONFINITE,
        "parallel": parallel.PARALLEL,
        "compute_dtype": tuple(steps.COMPUTE_DTYPES),
    }
    for path, names in known.items():
        if values[path] not in names:
            _error(path, values[path], f"must be one of {', '.join(map(repr, names))}")
    probe = ml_collections.ConfigDict(
        {k: values[k] for k in ("seed_axis", "lr_schedule", "learning_rate", "num_epochs")}
    )
    try:
        if values["seed_axis"] != SCHEMA["seed_axis"]:  # the default may ask for the backend
            steps.seed_axis(probe)
        steps.learning_rate(probe, steps_per_epoch=1)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _check_ranges(values: dict):
    for path, low in AT_LEAST.items():
        if path in values and values[path] < low:
            _error(path, values[path], f"must be >= {low}")
    seeds = tuple(values["seeds"])
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        _error("seeds", seeds, "must be non-empty and distinct, each >= 0")
    if values["learning_rate"] <= 0:
        _error("learning_rate", values["learning_rate"], "must be > 0")
    if not 0 <= values["selftrain_threshold"] < 1:
        _error("selftrain_threshold", values["selftrain_threshold"], "must be in [0, 1)")
    if not 0 < values["data.val_fraction"] < 1:
        _error("data.val_fraction", values["data.val_fraction"], "must be in (0, 1), exclusive")
    for path in ("data.std", "data.test_std"):
        if values[path] <= 0:
            _error(path, values[path], "must be > 0")
    size = tuple(values["data.image_size"])
    if len(size) != 2 or min(size) < 1:
        _error("data.image_size", size, "must be two ints >= 1: (height, width)")


def _check_task(values: dict):
    task, n, weights = values["task"], values["num_classes"], tuple(values["class_weights"])
    labels = digitsum.MAX_SUM + 1 if values["data.name"] == DIGITSUM_NAME else NUM_DIGIT_CLASSES
    if task == "regress" and n != 1:
        _error("num_classes", n, "must be 1 for task 'regress' (one output)")
    if task != "regress" and n < labels:
        _error("num_classes", n, f"must be >= {labels} (the labels of {values['data.name']})")
    if weights and (len(weights) != n or min(weights) < 0):
        _error("class_weights", weights, f"must be empty or {n} (num_classes) numbers >= 0")
    specs = tuple(values.get("data.extra_tests", ()))
    if specs and values["data.name"] != DIGITSUM_NAME:
        _error("data.extra_tests", specs, f"only data.name {DIGITSUM_NAME!r} has extra tests")
    most = digitsum.WIDTH // DIGIT_WIDTH
    for spec in specs:
        placement, _, k = spec.partition("-")
        if placement not in digitsum.PLACEMENTS or not k.isdecimal() or not 1 <= int(k) <= most:
            _error(
                "data.extra_tests",
                specs,
                f"{spec!r} is not PLACEMENT-K with PLACEMENT {' or '.join(digitsum.PLACEMENTS)}"
                f" and K 1..{most} digits",
            )


def _pool(values: dict) -> tuple[int | None, str]:
    """(images in the training pool, where that number comes from) when known without reading
    data: data.limit bounds it from above, and MNIST train or data.size may give it."""
    name, path, limit = values["data.name"], values["data.path"], values["data.limit"]
    pool, source = None, ""
    if name == "mnist" or (name == "mislabeled" and not path):
        pool, source = MNIST_TRAIN, "MNIST train"
    elif name == DIGITSUM_NAME and not path:
        pool, source = values["data.size"], "config.data.size"
    if limit and (pool is None or limit < pool):
        return limit, "config.data.limit"
    return pool, source


def _check_splits(values: dict):
    """trainer._splits' check before the data is loaded: a batch must fit the training split,
    and validation must not be empty. Both splits only grow with the pool, so a pool that is
    only bounded from above (by data.limit) is enough to find them too small."""
    n, source = _pool(values)
    if n is None:
        return
    fraction, batch = values["data.val_fraction"], values["batch_size"]
    train, val = (len(x) for x in pipeline.split_indices(n, fraction, 0))
    of = f"{n} images ({source}) at config.data.val_fraction={fraction}"
    if train < batch:
        _error("batch_size", batch, f"larger than the training split: {train} of {of}")
    if not val:
        _error("data.val_fraction", fraction, f"leaves no validation images: 0 of {of}")


def check(config) -> None:
    """Raises ConfigError on the first unknown key, wrong type or impossible value of a run's
    config (a ConfigDict or a dict of the same shape); reads no data, compiles nothing."""
    tree = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    values = dict(_flatten(tree, GROUPS))
    _check_keys(values)
    _check_types(values)
    _check_ranges(values)
    _check_names(values)
    _check_task(values)
    _check_splits(values)
