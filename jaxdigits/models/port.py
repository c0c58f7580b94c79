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
