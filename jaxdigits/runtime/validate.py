"""check(config): every key and value of a training config, before any data is read.

A typo in a config file (`c.bacth_size = 64`) is otherwise a new key that
nothing reads, and a bad value fails only after the data is built and the
step is traced, or (config.original, data.extra_tests) after training.
The schema is what the studies' defaults (`defaults.mislabeled()`,
`defaults.digitsum()`) define, with the keys registered datasets and models
bring: the type of a key's default is the type its value must have.
"""

import difflib
import math
import numbers
import pathlib
from collections.abc import Mapping

import ml_collections

from jaxdigits import data, defaults, losses, models, output, saved_params, steps, tracking
from jaxdigits.data import fetch, pipeline
from jaxdigits.report import originals
from jaxdigits.runtime import interrupt, parallel

# Element types of sequence keys whose defaults are all empty.
EMPTY_DEFAULT_ELEMENTS = {"data.extra_tests": ""}
# Lower bounds: a key below its bound is an error.
AT_LEAST = {
    **dict.fromkeys(("num_classes", "batch_size", "eval_batch_size", "num_epochs"), 1),
    **dict.fromkeys(("weight_decay", "patience"), 0),
    "steps_per_call": -1,  # -1: the whole epoch per call, 0: auto, N: N steps
    "loss.selftrain_weight": 0,
    "loss.expected_mse_weight": 0,
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
    """({dotted key: default} of the keys every run has, over the studies' defaults, minus the
    keys a dataset or a model brings), the groups."""
    trees = [f(None).to_dict() for f in (defaults.mislabeled, defaults.digitsum)]
    groups = {k for tree in trees for k, v in tree.items() if isinstance(v, Mapping)}
    flat = [dict(_flatten(tree, groups)) for tree in trees]
    schema = {k: v for f in reversed(flat) for k, v in f.items()}
    for path, default in schema.items():  # a non-empty default tells the element type
        if isinstance(default, (tuple, list)) and not default:
            schema[path] = next((f[path] for f in flat if f.get(path)), default)
    return {k: v for k, v in schema.items() if k not in _plugin_keys()}, groups


def _plugin_keys() -> dict:
    """{dotted key: default} that registered datasets and models bring (read at check time,
    so that a plug-in registered after import counts)."""
    keys = {f"data.{k}": v for d in data.DATASETS.values() for k, v in d.config_keys.items()}
    return {**keys, **models.config_keys()}


SCHEMA, GROUPS = _schema()


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
    extra = _plugin_keys()
    for path in values:
        if path not in SCHEMA and path not in GROUPS and path not in extra:
            close = difflib.get_close_matches(path, [*SCHEMA, *extra], n=1)
            hint = f"did you mean config.{close[0]}?" if close else "see jaxdigits/defaults.py"
            raise ConfigError(f"config.{path}: unknown key; {hint}")
    for group in GROUPS & set(values):
        _error(group, values[group], "must be a group of keys (a ConfigDict)")
    needs = {path: "every run needs it (see jaxdigits/defaults.py)" for path in SCHEMA}
    name, model = values.get("data.name"), values.get("model")
    if isinstance(name, str) and name in data.DATASETS:
        for key in data.DATASETS[name].config_keys:
            needs[f"data.{key}"] = f"data.name {name!r} needs it (see jaxdigits/defaults.py)"
    if isinstance(model, str) and model in models.MODELS:
        for path in models.MODELS[model].config_keys:
            needs[path] = f"model {model!r} needs it (see configs/)"
    for path in sorted(needs.keys() - values.keys()):
        raise ConfigError(f"config.{path}: missing; {needs[path]}")


def _check_types(values: dict):
    """ConfigDict casts a bool to an int and takes None anywhere; a dict takes anything."""
    extra = _plugin_keys()
    for path, value in values.items():
        default = SCHEMA.get(path, extra.get(path))
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
        "loss.complementary": losses.COMPLEMENTARY_LOSSES,
        "model": tuple(models.MODELS),
        "data.name": tuple(data.DATASETS),
        "data.source": fetch.SOURCES,
        "original": ("", *originals.DIGITSUM),
        "nonfinite": interrupt.NONFINITE,
        "parallel": parallel.PARALLEL,
        "compute_dtype": tuple(steps.COMPUTE_DTYPES),
        "init_params": saved_params.WHICH,
        "loss.selftrain_view": losses.SELFTRAIN_VIEWS,
    }
    for path, names in known.items():
        if values[path] not in names:
            _error(path, values[path], f"must be one of {', '.join(map(repr, names))}")
    try:
        tracking.names(values["log"])
    except ValueError as e:
        raise ConfigError(str(e)) from None
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
    threshold = values["loss.selftrain_threshold"]
    if not 0 <= threshold < 1:
        _error("loss.selftrain_threshold", threshold, "must be in [0, 1)")
    if not 0 < values["data.val_fraction"] < 1:
        _error("data.val_fraction", values["data.val_fraction"], "must be in (0, 1), exclusive")
    for path in ("data.std", "data.test_std"):
        if values[path] <= 0:
            _error(path, values[path], "must be > 0")
    size = tuple(values["data.image_size"])
    if len(size) != 2 or min(size) < 1:
        _error("data.image_size", size, "must be two ints >= 1: (height, width)")


def _check_task(values: dict):
    task, n, weights = values["task"], values["num_classes"], tuple(values["loss.class_weights"])
    dataset = data.spec(values["data.name"])
    labels = dataset.num_labels
    if task == "regress" and n != 1:
        _error("num_classes", n, "must be 1 for task 'regress' (one output)")
    if task != "regress" and n < labels:
        _error("num_classes", n, f"must be >= {labels} (the labels of {values['data.name']})")
    decodes = tuple(values["decodes"])
    if not decodes or decodes[0] != "argmax" or len(set(decodes)) != len(decodes):
        _error("decodes", decodes, "must start with 'argmax', each decode once")
    if not set(decodes) <= set(losses.DECODES):
        _error("decodes", decodes, f"must be of {', '.join(map(repr, losses.DECODES))}")
    if task == "regress" and decodes != ("argmax",):  # no class probabilities to read
        _error("decodes", decodes, "must be ('argmax',) for task 'regress' (rounded outputs)")
    if weights and (len(weights) != n or min(weights) < 0):
        _error("loss.class_weights", weights, f"must be empty or {n} (num_classes) numbers >= 0")
    teacher = values["teacher"]
    if teacher and (task, values["data.name"]) != ("classify", "mislabeled"):
        _error("teacher", teacher, "needs task 'classify' on data.name 'mislabeled'")
    if teacher and not (pathlib.Path(teacher) / output.CONFIG).is_file():
        _error("teacher", teacher, f"has no {output.CONFIG}: not a run directory or kept run")
    specs = tuple(values.get("data.extra_tests", ()))
    if specs and dataset.extra_test is None:
        having = ", ".join(repr(k) for k, d in data.DATASETS.items() if d.extra_test)
        rule = f"data.name {values['data.name']!r} has no extra tests (data.name {having} has)"
        _error("data.extra_tests", specs, rule)
    for spec in specs:
        rule = dataset.extra_test_rule(spec) if dataset.extra_test else None
        if rule:
            _error("data.extra_tests", specs, rule)


def _pool(values: dict) -> tuple[int | None, str]:
    """(images in the training pool, where that number comes from) when known without reading
    data: data.limit bounds it from above, and MNIST train or data.size may give it."""
    cfg = ml_collections.ConfigDict({k[5:]: v for k, v in values.items() if k[:5] == "data."})
    pool, source = data.spec(cfg.name).pool_size(cfg) or (None, "")
    limit = cfg.limit
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
