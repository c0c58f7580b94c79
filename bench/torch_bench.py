"""PyTorch training steps to time: the baseline a competent PyTorch user would write, at its best.

Modes:
  eager           the model as written (NCHW), a plain training loop
  eager_cl        the same in channels_last memory format
  compile         the forward and loss through torch.compile (inductor's default mode,
                  fullgraph=True, dynamic=False); backward through the compiled graph, Adam
                  as in eager
  compile_graphs  the same with mode="reduce-overhead": inductor's forward and backward
                  replayed as CUDA graphs. CUDA only: elsewhere build raises Unavailable
bf16 runs the forward under torch.autocast(bfloat16) (the loss in float32), float32 params
and Adam. On CUDA (configure): cuDNN autotunes every convolution (cudnn.benchmark, as XLA
autotunes its convolutions), float32 matmuls and convolutions run in TF32
(torch.set_float32_matmul_precision("high"), cudnn.allow_tf32), as XLA's default precision
on the GPU does, and Adam is fused.

The compiled modes are checked, not trusted: each build compiles its own copy of the step's
code (dynamo caches per code object, so one build can neither reuse another's graph nor
count as its recompile), and must compile exactly one graph, in its first call, and none
after. A first call that compiles nothing (dynamo ran the step eagerly), more than one graph,
a recompile in any later call (dynamo's error_on_recompile, with the guard that failed), a
graph break (fullgraph) or CUDA graphs that inductor skipped raise CompileFailed or
dynamo's error: the bench reports that row failed, with the reason, instead of timing it.
reset_compiler() (torch._dynamo.reset) drops every compiled graph and CUDA-graph pool; the
bench calls it before the builds of each network, batch and precision, not between two
builds it times together, since a reset discards the code of both.

Each builder returns `run()`, which trains the given steps and waits for the device.
"""

import types

import torch
import torch.nn.functional as F

MODES = ("eager", "eager_cl", "compile", "compile_graphs")
COMPILED = {"compile": "default", "compile_graphs": "reduce-overhead"}  # torch.compile mode=


class Unavailable(Exception):
    """A mode that cannot run here; the message says why."""


class CompileFailed(Exception):
    """A compiled mode that did not run as one compiled graph per build; the message says how."""


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def synchronize(dev: torch.device):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def configure() -> dict:
    """On CUDA: cuDNN autotuning and TF32 for float32 matmuls and convolutions (process-wide).
    Returns the settings in force ({} on a machine without CUDA), for the results file."""
    if device().type != "cuda":
        return {}
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = True  # torch's default, stated
    torch.set_float32_matmul_precision("high")
    return {
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }


def reset_compiler():
    """Drops every graph torch.compile built so far (and its CUDA-graph memory pools)."""
    torch._dynamo.reset()


def loss_fn(cfg, dev):
    """The config's training loss, as the originals computed it."""
    if cfg.task == "regress":
        return lambda out, y: F.mse_loss(out.squeeze(1), y)
    weights = cfg.loss.class_weights
    weight = torch.tensor(weights, device=dev) if weights else None
    return lambda out, y: F.cross_entropy(out, y, weight=weight)


def build(mode, torch_model, cfg, x, y, precision="f32"):
    """run() for `mode`; x [steps, B, H, W, 1] and y [steps, B] numpy (NHWC, as JAX's)."""
    if mode not in MODES:
        raise ValueError(f"unknown PyTorch mode {mode!r}; known: {', '.join(MODES)}")
    dev = device()
    if mode == "compile_graphs" and dev.type != "cuda":
        raise Unavailable("CUDA graphs need a CUDA device, and torch sees none")
    configure()
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
    criterion = loss_fn(cfg, dev)
    bf16 = precision == "bf16"

    def forward_loss(xb, yb):
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            out = model(xb)
        return criterion(out.float(), yb)

    if mode in COMPILED:
        forward_loss = torch.compile(
            _own_code(forward_loss), mode=COMPILED[mode], fullgraph=True, dynamic=False
        )
    graphs = mode == "compile_graphs"

    def step(xb, yb):
        opt.zero_grad(set_to_none=True)
        if graphs:  # a new iteration: the previous one's graph outputs may be overwritten
            torch.compiler.cudagraph_mark_step_begin()
        forward_loss(xb, yb).backward()
        opt.step()

    def train():
        for xb, yb in zip(xs, ys, strict=True):
            step(xb, yb)
        synchronize(dev)

    run = _checked(train, graphs) if mode in COMPILED else train
    run.model = model  # for tests: the trained weights
    run.batches = xs, ys  # for tests: the device batches, in place
    return run


def _own_code(fn):
    """fn with a code object of its own: dynamo keeps compiled graphs per code object."""
    code = fn.__code__.replace()
    assert code is not fn.__code__
    return types.FunctionType(code, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)


def _counts() -> dict:
    from torch._dynamo.utils import counters

    return {
        "graphs": counters["stats"]["unique_graphs"],
        "cudagraph_skips": counters["inductor"]["cudagraph_skips"],
    }


def _checked(train, graphs: bool):
    """train() that raises CompileFailed (or dynamo's RecompileError, as CompileFailed) unless
    its first call compiles exactly one graph and no later call compiles any."""
    import torch._dynamo
    import torch._inductor.config

    calls = [0]

    def run():
        calls[0] += 1
        n = calls[0]
        before = _counts()
        if n == 1:
            config = {}
            if graphs and hasattr(torch._inductor.config.triton, "cudagraph_or_error"):
                config = {"triton.cudagraph_or_error": True}  # a skip raises, with its reason
            with torch._inductor.config.patch(config):
                train()
        else:
            try:
                with torch._dynamo.config.patch(error_on_recompile=True):
                    train()
            except torch._dynamo.exc.RecompileError as e:
                reason = " ".join(str(e).split())
                raise CompileFailed(f"recompiled in call {n}, after its build: {reason}") from e
        got = {k: v - before[k] for k, v in _counts().items()}
        if n == 1 and got["graphs"] == 0:
            raise CompileFailed("its first call compiled no graph: dynamo ran the step eagerly")
        if got["graphs"] > (1 if n == 1 else 0):
            raise CompileFailed(f"call {n} compiled {got['graphs']} graphs; expected 1 in call 1")
        if got["cudagraph_skips"]:
            raise CompileFailed("inductor skipped CUDA graphs (TORCH_LOGS=cudagraphs says why)")

    return run
