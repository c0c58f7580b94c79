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
  (resize, normalise) feeding the eager model, Adam, the same losses. Part III trained with
  PyTorch Lightning in the original, and does here where pytorch_lightning is installed
  (`pip install -e ".[lightning]"`): a LightningModule around the same model, loss and Adam,
  pl.Trainer with EarlyStopping on val_loss, the same DataLoaders; without Lightning, the
  plain loop below. The digit-sum run trains with the plain loop, as its original did. Each
  record names its recipe ("trainer", "lightning" or "loop"). On CUDA, torch runs with
  torch_bench.configure (cuDNN autotuning, TF32), as XLA autotunes and uses TF32 there.

`epochs` overrides the run's epochs at any size: `epochs=1, quick=False` is one full-size
epoch (throughput.py --end-to-end full --end-to-end-epochs 1). `toy` shrinks a quick run
to a few steps (--end-to-end toy): the GPU check's dry run, which checks the wiring only.
"""

import contextlib
import io
import logging
import tempfile
import time
import warnings

import jax
import numpy as np

from bench import networks, torch_bench
from jaxdigits import data, trainer
from jaxdigits.data import pipeline

RUNS = {"part3": "five_conv", "digitsum_regressor": "sum_cnn_regressor"}
EPOCHS = {"part3": 4, "digitsum_regressor": 15}
TOY = {"part3": (64, 32), "digitsum_regressor": (160, 64)}  # pool, test: two steps, one eval


def config(run: str, quick: bool, epochs: int | None = None, toy: bool = False):
    """The run's experiment config, one seed, a fixed number of epochs (`epochs`, else the
    original's, 1 when quick); `quick` shrinks the data, `toy` (with quick) to a few steps."""
    cfg = networks.NETWORKS[RUNS[run]].config()
    cfg.seeds = (0,)
    cfg.num_epochs = epochs or (1 if quick else EPOCHS[run])
    cfg.patience = 0  # exactly num_epochs, as the original's runs
    if quick:
        if run == "part3":
            cfg.data.limit, cfg.data.test_limit = 1280, 500
        else:
            cfg.data.size, cfg.data.test_size = 1600, 500
    if quick and toy:
        pool, test = TOY[run]
        if run == "part3":
            cfg.data.limit, cfg.data.test_limit = pool, test
        else:
            cfg.data.size, cfg.data.test_size = pool, test
        cfg.eval_batch_size = cfg.batch_size  # one eval program, the train batch's shape
    return cfg


class _CompileClock:
    """Seconds JAX spends tracing, lowering and compiling, and the persistent compilation
    cache's hits and misses, while active."""

    CACHE_EVENTS = {
        "/jax/compilation_cache/cache_hits": "hits",
        "/jax/compilation_cache/cache_misses": "misses",
    }

    def __init__(self):
        self.seconds = 0.0
        self.cache = {"hits": 0, "misses": 0}

    def __call__(self, event, duration, **_):
        if event.startswith("/jax/core/compile/"):
            self.seconds += duration

    def count(self, event, **_):
        if event in self.CACHE_EVENTS:
            self.cache[self.CACHE_EVENTS[event]] += 1

    def state(self) -> str:
        """Warm: every program was read from the cache; cold: some were compiled (the hits
        of a cold run are programs it compiled itself earlier on); off: no cache."""
        hits, misses = self.cache["hits"], self.cache["misses"]
        if not hits and not misses:
            return "off"
        return "cold" if misses else "warm"

    def __enter__(self):
        jax.monitoring.register_event_duration_secs_listener(self)
        jax.monitoring.register_event_listener(self.count)
        return self

    def __exit__(self, *exc):
        jax.monitoring.unregister_event_duration_listener(self)
        jax.monitoring.unregister_event_listener(self.count)


def run_jax(run: str, quick: bool, epochs: int | None = None, toy: bool = False) -> dict:
    cfg = config(run, quick, epochs, toy)
    with tempfile.TemporaryDirectory() as workdir, _CompileClock() as clock:
        t0 = time.perf_counter()
        quiet = io.StringIO()  # the trainer's tables and progress bar
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            summary = trainer.train_and_evaluate(cfg, workdir)
        wall = time.perf_counter() - t0
    record = _record(run, "jax", "trainer", cfg, wall, clock.seconds, summary["test_accuracy"])
    record.update(cache=clock.state(), cache_hits=clock.cache["hits"])
    record["cache_misses"] = clock.cache["misses"]
    return record


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


def recipe(run: str) -> str:
    """The torch recipe `run` trains with here: the original's Lightning for Part III where
    pytorch_lightning imports, else the plain loop."""
    if run != "part3":
        return "loop"
    try:
        import pytorch_lightning  # noqa: F401
    except ImportError:
        return "loop"
    return "lightning"


def run_torch(run: str, quick: bool, epochs: int | None = None, toy: bool = False) -> dict:
    import torch

    cfg = config(run, quick, epochs, toy)
    how = recipe(run)  # imports Lightning before the clock starts, as JAX is imported
    dev = torch_bench.device()
    settings = torch_bench.configure()
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
    fit = _fit_lightning if how == "lightning" else _fit_loop
    ran, test_acc = fit(model, cfg, train, val, test, dev)
    torch_bench.synchronize(dev)
    record = _record(run, "torch", how, cfg, time.perf_counter() - t0, 0.0, test_acc)
    record["epochs"] = ran
    if settings:
        record["torch_settings"] = settings
    return record


def _fit_loop(model, cfg, train, val, test, dev) -> tuple[int, float]:
    """The plain loop: train an epoch, validate, cfg.num_epochs times; test. Returns the
    epochs and the test accuracy."""
    import torch

    model.to(dev)
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
    return cfg.num_epochs, _accuracy(model, test, cfg, dev)


def _fit_lightning(model, cfg, train, val, test, dev) -> tuple[int, float]:
    """Part III's original recipe: pl.Trainer with EarlyStopping on val_loss, then
    trainer.test on the params at the end. Returns the epochs it ran and the test accuracy
    (on the device Lightning picks: `accelerator="auto"`, which is `dev`).

    The bench's runs last exactly num_epochs (cfg.patience 0, as the JAX trainer's "no early
    stopping"): EarlyStopping then gets patience num_epochs, which cannot run out, since the
    first validation always improves on inf and leaves at most num_epochs - 1 epochs without
    improvement. A config with patience keeps it, as the original's patience 1."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import EarlyStopping

    module = _lightning_module(pl, model, cfg)
    stop = EarlyStopping(monitor="val_loss", patience=cfg.patience or cfg.num_epochs)
    quiet = logging.getLogger("pytorch_lightning")
    level = quiet.level
    with tempfile.TemporaryDirectory() as root, warnings.catch_warnings():
        # On the CPU the loaders have no workers on purpose (see run_torch).
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        quiet.setLevel(logging.WARNING)  # "GPU available: ..." and the like
        try:
            trainer = pl.Trainer(
                max_epochs=cfg.num_epochs,
                callbacks=[stop],
                accelerator="auto",
                devices=1,
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                default_root_dir=root,
            )
            trainer.fit(module, train, val)
            (tested,) = trainer.test(module, test, verbose=False)
        finally:
            quiet.setLevel(level)
    return trainer.current_epoch, tested["test_accuracy"]


def _lightning_module(pl, model, cfg):
    """A LightningModule training `model` as the plain loop does: the config's loss (class
    weights in training, none in validation, as the original), Adam with L2 weight decay."""
    import torch
    import torch.nn.functional as F

    regress = cfg.task == "regress"

    def loss(out, y, weight=None):
        if regress:
            return F.mse_loss(out.squeeze(1), y.float())
        return F.cross_entropy(out, y, weight=weight)

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = model
            weights = cfg.loss.class_weights
            weights = torch.tensor(weights) if weights else None
            self.register_buffer("class_weights", weights)  # moves with the module

        def training_step(self, batch, _):
            x, y = batch
            return loss(self.model(x), y, self.class_weights)

        def validation_step(self, batch, _):
            x, y = batch
            self.log("val_loss", loss(self.model(x), y), batch_size=len(y))

        def test_step(self, batch, _):  # as _accuracy: a batch-size weighted mean
            x, y = batch
            out = self.model(x)
            pred = torch.round(out[:, 0]) if regress else out.argmax(1)
            self.log("test_accuracy", (pred == y).float().mean(), batch_size=len(y))

        def configure_optimizers(self):
            trainable = [p for p in self.model.parameters() if p.requires_grad]
            return torch.optim.Adam(trainable, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)

    return Module()


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


def _record(run, framework, how, cfg, wall, compile_s, test_acc) -> dict:
    return {
        "run": run,
        "framework": framework,
        "recipe": how,
        "epochs": cfg.num_epochs,
        "batch_size": cfg.batch_size,
        "wall_s": wall,
        "compile_s": compile_s,
        "steady_s": wall - compile_s,
        "test_accuracy": float(test_acc),
    }
