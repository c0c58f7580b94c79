"""Networks by name: `get(name, **kwargs)` builds the Flax module a config names."""

from jaxdigits.models.five_conv import FiveConv

MODELS = {"five_conv": FiveConv}


def get(name: str, **kwargs):
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}")
    return MODELS[name](**kwargs)
