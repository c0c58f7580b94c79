"""The digit-sum study's VGG regressor: torchvision VGG11 features under a regression head.

1x1 conv 1->3 (no bias, trainable) -> VGG11 `features` (IMAGENET1K_V1,
frozen: MODEL.frozen) -> adaptive average
pool to 7x7 (torchvision's) -> flatten 25088 -> Linear 4096 ReLU Dropout
0.5 -> Linear 256 ReLU Dropout 0.5 -> Linear 1. The feature convs are
named by their index in torchvision's `features` Sequential, so that the
port is a rename.
"""

import hashlib
import os
import pathlib
import warnings

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jaxdigits.models.dropout import Dropout
from jaxdigits.models.layers import conv, dense, max_pool
from jaxdigits.models.registry import Model

# torchvision's VGG11 ("A"): channels per 3x3 conv, "M" a 2x2 max-pool.
VGG11 = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")
WEIGHTS_FILE = "vgg11-8a719046.pth"  # torchvision's VGG11_Weights.IMAGENET1K_V1
WEIGHTS_SHA256_PREFIX = "8a719046"  # torchvision names its files by their sha256


def feature_layers():
    """(torch index in `features`, channels or "M") for each layer of VGG11."""
    index, layers = 0, []
    for item in VGG11:
        layers.append((index, item))
        index += 1 if item == "M" else 2  # a conv is followed by its ReLU
    return layers


class VGG11Features(nn.Module):
    @nn.compact
    def __call__(self, x):
        for index, item in feature_layers():
            if item == "M":
                x = max_pool(x)
            else:
                x = nn.relu(conv(item, (3, 3), x.shape[-1], padding=1, name=f"conv{index}")(x))
        return x


def _pool_matrix(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] averaging weights of torch's adaptive pooling along one axis.

    Window i covers [floor(i * n_in / n_out), ceil((i + 1) * n_in / n_out)).
    """
    m = np.zeros((n_out, n_in), np.float32)
    for i in range(n_out):
        start, end = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
        m[i, start:end] = 1.0 / (end - start)
    return m


def adaptive_avg_pool(x, size):
    """torch.nn.AdaptiveAvgPool2d(size) on NHWC [B, H, W, C]."""
    rows = jnp.asarray(_pool_matrix(x.shape[1], size[0]), x.dtype)
    cols = jnp.asarray(_pool_matrix(x.shape[2], size[1]), x.dtype)
    return jnp.einsum("ih,bhwc,jw->bijc", rows, x, cols)


class VGGRegressor(nn.Module):
    num_classes: int = 1
    dropout_rate: float = 0.5
    head: tuple[int, ...] = (4096, 256)  # the original's hidden layers

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = conv(3, (1, 1), x.shape[-1], use_bias=False, name="adapter")(x)
        x = VGG11Features(name="features")(x)
        x = adaptive_avg_pool(x, (7, 7))
        x = x.reshape(x.shape[0], -1)
        for i, features in enumerate(self.head):
            x = nn.relu(dense(features, x.shape[-1], name=f"fc{i + 1}")(x))
            x = Dropout(self.dropout_rate, deterministic=not train)(x)
        return dense(self.num_classes, x.shape[-1], name="fc3")(x)


def default_weights_path() -> pathlib.Path:
    """Where torchvision caches VGG11's ImageNet weights: $TORCH_HOME/hub/checkpoints."""
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch"
    )
    return pathlib.Path(torch_home) / "hub" / "checkpoints" / WEIGHTS_FILE


def imagenet_features(path: str = "") -> dict:
    """Params of `features` from torchvision's VGG11 IMAGENET1K_V1 state_dict (a .pth file).

    `path` empty: torchvision's download cache, where a file that is not the
    ImageNet one (by its sha256) is an error; a file given by path only
    warns, so that a user's own copy or fine-tune can be used. Needs torch
    to read the file.
    """
    from jaxdigits.models import port

    file = pathlib.Path(path) if path else default_weights_path()
    if not file.is_file():
        raise FileNotFoundError(
            f"{file}: VGG11 ImageNet weights not found. On a machine with network, "
            "`python -c \"import torchvision; torchvision.models.vgg11(weights='IMAGENET1K_V1')\"` "
            f"downloads them to {default_weights_path()}; or pass "
            "--config.vgg_weights=PATH to a torchvision vgg11 state_dict (.pth). "
            "The VGG regressor does not train on random features."
        )
    digest = _sha256(file)
    if not digest.startswith(WEIGHTS_SHA256_PREFIX):
        message = (
            f"{file}: sha256 {digest[:8]}..., not torchvision's IMAGENET1K_V1 VGG11 "
            f"({WEIGHTS_SHA256_PREFIX}...)"
        )
        if not path:
            raise ValueError(message + "; delete it and download it again")
        warnings.warn(message + "; using it as --config.vgg_weights asks", stacklevel=2)
    try:
        import torch
    except ImportError as e:
        raise ImportError(f"{file}: reading .pth needs torch (pip install -e .[torch])") from e
    try:
        state_dict = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a bad file
        raise ValueError(f"{file}: not a readable torch state_dict ({e})") from e
    return port.vgg11_features(state_dict, source=str(file))


def _sha256(file: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


MODEL = Model(
    VGGRegressor,
    frozen=("features",),
    config_keys={
        "vgg_weights": "",  # a .pth state_dict; empty: the torch hub cache
        "vgg_head": (4096, 256),  # hidden layers of the head (the original's; tests use less)
    },
    resumable=("vgg_weights",),  # the features are in the checkpoint: the file may move
    pretrained=lambda config: {"features": imagenet_features(config.vgg_weights)},
    # runs from before the key was there have the original's head
    options=lambda config: {"head": tuple(config.get("vgg_head", (4096, 256)))},
)
