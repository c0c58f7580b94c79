"""PyTorch training steps to time: the baseline a competent PyTorch user would write.

Modes:
  eager     the model as written (NCHW), a plain training loop
  eager_cl  the same in channels_last memory format
  compile   torch.compile(model) (default mode), NCHW
bf16 runs the forward and loss under torch.autocast(bfloat16). Adam is fused on CUDA, and
float32 matmuls may use TF32 there (torch.set_float32_matmul_precision("high")), as XLA
does by default. Each builder returns `run()`, which trains the given steps and waits for
the device.
"""

import torch
import torch.nn.functional as F

MODES = ("eager", "eager_cl", "compile")


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def synchronize(dev: torch.device):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def loss_fn(cfg, dev):
    """The config's training loss, as the originals computed it."""
    if cfg.task == "regress":
        return lambda out, y: F.mse_loss(out.squeeze(1), y)
    weight = torch.tensor(cfg.class_weights, device=dev) if cfg.class_weights else None
    return lambda out, y: F.cross_entropy(out, y, weight=weight)


def build(mode, torch_model, cfg, x, y, precision="f32"):
    """run() for `mode`; x [steps, B, H, W, 1] and y [steps, B] numpy (NHWC, as JAX's)."""
    if mode not in MODES:
        raise ValueError(f"unknown PyTorch mode {mode!r}; known: {', '.join(MODES)}")
    dev = device()
    if dev.type == "cuda":
        torch.set_float32_matmul_precision("high")
    fmt = torch.channels_last if mode == "eager_cl" else torch.contiguous_format
    model = torch_model.to(dev, memory_format=fmt).train()
    xs = [torch.from_numpy(a).permute(0, 3, 1, 2).to(dev).contiguous(memory_format=fmt) for a in x]
    ys = [torch.from_numpy(a).to(dev) for a in y]  # int32 classes for cross_entropy: long
    ys = [t.long() if cfg.task == "classify" else t for t in ys]
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(
        trainable,
        lr=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        fused=dev.type == "cuda" or None,
    )
    forward = torch.compile(model) if mode == "compile" else model
    criterion = loss_fn(cfg, dev)
    bf16 = precision == "bf16"

    def step(xb, yb):
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            out = forward(xb)
        loss = criterion(out.float(), yb)
        loss.backward()
        opt.step()

    def run():
        for xb, yb in zip(xs, ys, strict=True):
            step(xb, yb)
        synchronize(dev)

    run.model = model  # for tests: the trained weights
    return run
