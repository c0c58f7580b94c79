"""Networks by config name: `get(name, num_classes=...)` builds the Flax module, `spec(name)`
says what else the trainer must know of it (registry.Model)."""

from jaxdigits.models import five_conv, mnist_cnn, sum_centres, sum_cnn, sum_columns, sum_slots, vgg
from jaxdigits.models.registry import (
    MODELS,
    Model,
    build,
    config_keys,
    get,
    pretrained,
    register,
    resumable_keys,
    spec,
    split_frozen,
)

__all__ = [
    "MODELS",
    "Model",
    "build",
    "config_keys",
    "get",
    "pretrained",
    "register",
    "resumable_keys",
    "spec",
    "split_frozen",
]

register("five_conv", five_conv.MODEL)
register("mnist_cnn", mnist_cnn.MODEL)  # a stronger 28x28 network for complementary labels
register("sum_cnn", sum_cnn.MODEL)  # the digit-sum regressor (num_classes=1) and classifier (37)
register("sum_columns", sum_columns.MODEL)  # digit sums read column by column, any placement
register("sum_centres", sum_centres.MODEL)  # digit sums, columns that choose the centres
register("sum_slots", sum_slots.MODEL)  # digit sums, one shared digit reader per quarter
register("vgg_regressor", vgg.MODEL)
