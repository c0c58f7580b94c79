"""PyTorch state_dict -> Flax parameters.

Convs go OIHW -> HWIO. A Linear that follows a flatten reads its input in
torch's NCHW-flatten order; Flax flattens NHWC, so its weight rows are
permuted once here, never the activations at run time.
"""

import numpy as np


def _numpy(tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy() if hasattr(tensor, "detach") else np.asarray(tensor)


def conv(state_dict, prefix: str) -> dict:
    params = {"kernel": _numpy(state_dict[f"{prefix}.weight"]).transpose(2, 3, 1, 0)}
    if f"{prefix}.bias" in state_dict:
        params["bias"] = _numpy(state_dict[f"{prefix}.bias"])
    return params


def linear(state_dict, prefix: str, nchw: tuple[int, int, int] | None = None) -> dict:
    """A torch Linear; `nchw` = (C, H, W) of the feature map it flattens, if any."""
    weight = _numpy(state_dict[f"{prefix}.weight"])  # [out, in]
    if nchw is not None:
        c, h, w = nchw
        weight = weight.reshape(-1, c, h, w).transpose(0, 2, 3, 1).reshape(weight.shape[0], -1)
    return {"kernel": weight.T.copy(), "bias": _numpy(state_dict[f"{prefix}.bias"])}


def five_conv(state_dict) -> dict:
    """Params of models.FiveConv from bench.torch_models.FiveConvTorch's state_dict."""
    params = {f"conv{i}": conv(state_dict, f"conv{i}") for i in range(1, 6)}
    channels = state_dict["conv5.weight"].shape[0]
    spatial = state_dict["fc.weight"].shape[1] // channels
    params["fc"] = linear(state_dict, "fc", nchw=(channels, 1, spatial))
    return {"params": params}


def sum_cnn(state_dict) -> dict:
    """Params of models.SumCNN from bench.torch_models.SumCNNTorch's state_dict."""
    params = {name: conv(state_dict, name) for name in ("conv1", "conv2")}
    channels = state_dict["conv2.weight"].shape[0]
    spatial = state_dict["fc1.weight"].shape[1] // channels  # 10 x 42 for 40x168 inputs
    params["fc1"] = linear(state_dict, "fc1", nchw=(channels, 1, spatial))
    params.update({name: linear(state_dict, name) for name in ("fc2", "fc3")})
    return {"params": params}


def vgg11_features(state_dict, prefix: str = "features", source: str = "state_dict") -> dict:
    """Params of models.vgg.VGG11Features from a torchvision VGG11 state_dict (any prefix)."""
    from jaxdigits.models.vgg import feature_layers

    params, in_channels = {}, 3
    for index, item in feature_layers():
        if item == "M":
            continue
        key = f"{prefix}.{index}"
        expected = (item, in_channels, 3, 3)
        if f"{key}.weight" not in state_dict:
            raise ValueError(f"{source}: no {key}.weight; is this a torchvision vgg11 state_dict?")
        shape = tuple(state_dict[f"{key}.weight"].shape)
        if shape != expected:
            raise ValueError(f"{source}: {key}.weight has shape {shape}, VGG11 needs {expected}")
        params[f"conv{index}"] = conv(state_dict, key)
        in_channels = item
    return params


def vgg_regressor(state_dict) -> dict:
    """Params of models.VGGRegressor from bench.torch_models.VGGRegressorTorch's state_dict."""
    params = {
        "adapter": conv(state_dict, "adapter"),
        "features": vgg11_features(state_dict),
        "fc1": linear(state_dict, "head.0", nchw=(512, 7, 7)),
        "fc2": linear(state_dict, "head.3"),
        "fc3": linear(state_dict, "head.6"),
    }
    return {"params": params}
