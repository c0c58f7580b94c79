"""The benchmarked networks: each one's config, its Flax and PyTorch models with the same
weights, and random batches of its input shape.

The training settings (task, classes, optimizer, class weights, input
size) come from the experiment configs in configs/, so the bench trains
exactly what the runs train.
"""

import dataclasses
import pathlib

import numpy as np

from jaxdigits import defaults, models
from jaxdigits.models import port

ROOT = pathlib.Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class Network:
    name: str
    config_file: str  # under configs/
    torch_class: str  # in bench.torch_models
    port: str  # the function of jaxdigits.models.port that maps its weights
    changes: tuple = ()  # (key, value) pairs over the config: e.g. a toy VGG head for dry runs

    def config(self):
        """The experiment config this network trains with (configs/<file>), with `changes`."""
        cfg = defaults.from_file(ROOT / "configs" / self.config_file)
        cfg.update_from_flattened_dict(dict(self.changes))
        return cfg

    def models(self, seed: int = 0):
        """(flax module, its params, torch module): the same weights in both, torch's init."""
        import torch

        from bench import torch_models

        cfg = self.config()
        torch.manual_seed(seed)
        kwargs = {"num_classes": cfg.num_classes} if self.torch_class == "SumCNNTorch" else {}
        if self.torch_class == "VGGRegressorTorch":
            kwargs["head"] = tuple(cfg.vgg_head)  # the config's head in both frameworks
        torch_model = getattr(torch_models, self.torch_class)(**kwargs)
        params = getattr(port, self.port)(torch_model.state_dict())["params"]
        return models.build(cfg), params, torch_model


NETWORKS = {
    n.name: n
    for n in (
        Network("five_conv", "part3.py", "FiveConvTorch", "five_conv"),
        Network("sum_cnn_regressor", "digitsum_regressor.py", "SumCNNTorch", "sum_cnn"),
        Network("sum_cnn_classifier", "digitsum_classifier.py", "SumCNNTorch", "sum_cnn"),
        Network("vgg_regressor", "digitsum_vgg.py", "VGGRegressorTorch", "vgg_regressor"),
    )
}


def batches(cfg, batch: int, steps: int, seed: int = 0):
    """`steps` random batches, NHWC: x float32 [steps, batch, H, W, 1] (standard normal, like
    normalised images) and y [steps, batch] (int32 classes, or float32 sums 0..36 for a
    regressor)."""
    rng = np.random.default_rng(seed)
    h, w = cfg.data.image_size
    x = rng.standard_normal((steps, batch, h, w, 1), dtype=np.float32)
    if cfg.task == "regress":
        y = rng.integers(0, 37, (steps, batch)).astype(np.float32)
    else:
        y = rng.integers(0, cfg.num_classes, (steps, batch)).astype(np.int32)
    return x, y
