"""The networks a config can name, each with what the trainer must know beyond its module.

A model module ends with `MODEL = Model(TheFlaxModule, ...)`; models/__init__.py registers
it under its config name. A plug-in elsewhere calls `register("name", Model(...))` before
training (docs/extending.md).
"""

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class Model:
    """A network as the trainer, the checks and the checkpoints see it.

    module:      the Flax module class, built as module(num_classes=config.num_classes,
                 **options(config)).
    frozen:      top-level param subtrees that are loaded pretrained and never trained:
                 kept once, off the seed axis, out of the optimizer.
    config_keys: config keys this model reads beyond the shared ones, with their defaults
                 (the checks accept them, and require them when this model is named).
    resumable:   of those keys, the ones a resumed run may change (a moved weights file).
    pretrained:  config -> {frozen subtree: params}, read before any data so that a missing
                 file stops a run at once; None if nothing is loaded.
    options:     config -> further keyword arguments of the module, from its config keys.
    """

    module: Callable
    frozen: tuple[str, ...] = ()
    config_keys: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    resumable: tuple[str, ...] = ()
    pretrained: Callable[[Any], dict] | None = None
    options: Callable[[Any], dict] = lambda config: {}


MODELS: dict[str, Model] = {}


def register(name: str, model: Model) -> None:
    if not isinstance(model, Model):
        raise TypeError(f"models.register({name!r}, ...): needs a models.Model, not {model!r}")
    MODELS[name] = model


def spec(name: str) -> Model:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def get(name: str, **kwargs):
    """The Flax module of model `name`, built with kwargs (num_classes=...)."""
    return spec(name).module(**kwargs)


def build(config):
    """The Flax module a run's config names, with its options."""
    model = spec(config.model)
    return model.module(num_classes=config.num_classes, **model.options(config))


def split_frozen(name: str, params: dict) -> tuple[dict, dict]:
    """(trainable, frozen): the top-level subtrees of `params` that model `name` trains, and
    those it keeps frozen."""
    names = spec(name).frozen
    trainable = {k: v for k, v in params.items() if k not in names}
    return trainable, {k: v for k, v in params.items() if k in names}


def pretrained(config) -> dict:
    """The param subtrees config.model loads from elsewhere ({} for most models)."""
    load = spec(config.model).pretrained
    return load(config) if load else {}


def config_keys() -> dict[str, Any]:
    """Every registered model's extra config keys, with their defaults."""
    return {k: v for m in MODELS.values() for k, v in m.config_keys.items()}


def resumable_keys() -> tuple[str, ...]:
    return tuple(k for m in MODELS.values() for k in m.resumable)
