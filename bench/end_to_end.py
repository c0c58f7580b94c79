"""Wall time of whole runs, as a user feels it: JAX's trainer against the originals' recipe.

Runs: Part III from scratch (configs/part3.py, 4 epochs of batch 32, as the
original's run lasted) and the digit-sum CNN regressor (configs/digitsum_regressor.py,
15 epochs of batch 64), one seed each. Both frameworks build the same data
(jaxdigits.data.build), the same split, and train, validate every epoch and
test at the end.

- JAX: `trainer.train_and_evaluate` as `python -m jaxdigits.train` runs it, with its
  checkpoints, metrics and figures. Compile time is JAX's own count of tracing,
  lowering and XLA compilation (jax.monitoring), reported apart from the rest.
- PyTorch: the originals' recipe, a DataLoader whose Dataset prepares one image at a time
  (resize, normalise) feeding the eager model, Adam, the same losses.
"""

import contextlib
import io
import tempfile
import time

import jax
import numpy as np

from bench import networks, torch_bench
from jaxdigits import data, trainer
from jaxdigits.data import pipeline

RUNS = {"part3": "five_conv", "digitsum_regressor": "sum_cnn_regressor"}
EPOCHS = {"part3": 4, "digitsum_regressor": 15}


def config(run: str, quick: bool):
    """The run's experiment config, one seed, a fixed number of epochs; `quick` shrinks it."""
    cfg = networks.NETWORKS[RUNS[run]].config()
    cfg.seeds = (0,)
    cfg.num_epochs = 1 if quick else EPOCHS[run]
    cfg.patience = 0  # exactly num_epochs, as the original's runs
    if quick:
        if run == "part3":
            cfg.data.limit, cfg.data.test_limit = 1280, 500
        else:
            cfg.data.size, cfg.data.test_size = 1600, 500
    return cfg


class _CompileClock:
    """Seconds JAX spends tracing, lowering and compiling, while active."""

    def __init__(self):
        self.seconds = 0.0

    def __call__(self, event, duration, **_):
        if event.startswith("/jax/core/compile/"):
            self.seconds += duration

    def __enter__(self):
        jax.monitoring.register_event_duration_secs_listener(self)
        return self

    def __exit__(self, *exc):
        jax.monitoring.unregister_event_duration_listener(self)


def run_jax(run: str, quick: bool) -> dict:
    cfg = config(run, quick)
    with tempfile.TemporaryDirectory() as workdir, _CompileClock() as clock:
        t0 = time.perf_counter()
        quiet = io.StringIO()  # the trainer's tables and progress bar
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            summary = trainer.train_and_evaluate(cfg, workdir)
        wall = time.perf_counter() - t0
    return _record(run, "jax", cfg, wall, clock.seconds, summary["test_accuracy"])


class ArrayDataset:
    """uint8 images by index, prepared one at a time as torchvision transforms would."""

    def __init__(self, images, labels, idx, cfg, mean, std):
        self.images, self.labels, self.idx = images, labels, idx
        self.size, self.mean, self.std = tuple(cfg.data.image_size), mean, std
        self.long = cfg.task == "classify"

    def __len__(self):
        return len(self.idx)

    def __getitem__(self, i):
        import torch

        j = self.idx[i]
        x = torch.from_numpy(self.images[j]).float()[None]
        if tuple(x.shape[1:]) != self.size:
            x = torch.nn.functional.interpolate(x[None], self.size, mode="bilinear")[0]
        label = int(self.labels[j]) if self.long else float(self.labels[j])
        return (x - self.mean) / self.std, label


def run_torch(run: str, quick: bool) -> dict:
    import torch

    cfg = config(run, quick)
    dev = torch_bench.device()
    t0 = time.perf_counter()
    torch.manual_seed(0)
    ds = data.build(cfg.data)
    train_idx, val_idx = pipeline.split_indices(len(ds.labels), cfg.data.val_fraction, 0)
    # Worker processes on a GPU machine (spawned: forking a process that runs JAX's threads
    # can deadlock); on the CPU they would take the cores the model trains on.
    workers = 4 if dev.type == "cuda" else 0
    spawn = {"multiprocessing_context": "spawn", "persistent_workers": True} if workers else {}

    def loader(images, labels, idx, mean, std, shuffle):
        dataset = ArrayDataset(images, labels, idx, cfg, mean, std)
        return torch.utils.data.DataLoader(
            dataset, cfg.batch_size, shuffle, num_workers=workers, pin_memory=bool(workers), **spawn
        )

    d = cfg.data
    train = loader(ds.images, ds.labels, train_idx, d.mean, d.std, True)
    val = loader(ds.images, ds.labels, val_idx, d.mean, d.std, False)
    test_idx = np.arange(len(ds.test_labels))
    test = loader(ds.test_images, ds.test_labels, test_idx, d.test_mean, d.test_std, False)

    *_, model = networks.NETWORKS[RUNS[run]].models()
    model = model.to(dev)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(trainable, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    criterion = torch_bench.loss_fn(cfg, dev)
    for _ in range(cfg.num_epochs):
        model.train()
        for x, y in train:
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            opt.zero_grad(set_to_none=True)
            criterion(model(x), y.float() if cfg.task == "regress" else y).backward()
            opt.step()
        _accuracy(model, val, cfg, dev)
    test_acc = _accuracy(model, test, cfg, dev)
    torch_bench.synchronize(dev)
    return _record(run, "torch", cfg, time.perf_counter() - t0, 0.0, test_acc)


def _accuracy(model, loader, cfg, dev) -> float:
    import torch

    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in loader:
            out = model(x.to(dev, non_blocking=True))
            pred = torch.round(out[:, 0]) if cfg.task == "regress" else out.argmax(1)
            correct += int((pred.cpu() == y).sum())
            total += len(y)
    return correct / total


def _record(run, framework, cfg, wall, compile_s, test_acc) -> dict:
    return {
        "run": run,
        "framework": framework,
        "epochs": cfg.num_epochs,
        "batch_size": cfg.batch_size,
        "wall_s": wall,
        "compile_s": compile_s,
        "steady_s": wall - compile_s,
        "test_accuracy": float(test_acc),
    }
