"""Networks by name: `get(name, **kwargs)` builds the Flax module a config names."""

from jaxdigits.models.five_conv import FiveConv
from jaxdigits.models.mnist_cnn import MnistCNN
from jaxdigits.models.sum_cnn import SumCNN
from jaxdigits.models.sum_columns import SumColumns
from jaxdigits.models.vgg import VGGRegressor

MODELS = {
    "five_conv": FiveConv,
    "mnist_cnn": MnistCNN,  # a stronger 28x28 network for complementary labels
    "sum_cnn": SumCNN,  # the digit-sum regressor (num_classes=1) and classifier (37)
    "sum_columns": SumColumns,  # digit sums read column by column, any placement
    "vgg_regressor": VGGRegressor,
}
# Parameter subtrees a model loads pretrained and keeps frozen in the optimizer.
FROZEN = {"vgg_regressor": ("features",)}


def split_frozen(name: str, params: dict) -> tuple[dict, dict]:
    """(trainable, frozen): the top-level subtrees of `params` that model `name` trains, and
    those it keeps frozen (FROZEN)."""
    names = FROZEN.get(name, ())
    trainable = {k: v for k, v in params.items() if k not in names}
    return trainable, {k: v for k, v in params.items() if k in names}


def get(name: str, **kwargs):
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}")
    return MODELS[name](**kwargs)
