"""Settings shared by the experiment configs in configs/.

Each config file calls `base()` (the mislabeled-MNIST study) or
`digitsum()` (the digit-sum study) and changes what its experiment
changed. The arg after the colon (`configs/part3.py:smoke`, `:pretrained`,
or both, comma-separated) selects variants.
"""

import importlib.util
import json
import pathlib

import ml_collections

from jaxdigits import output

# Normalisation constants of the original, on the 0..255 pixel scale.
MNIST_TEST_NORM = (0.1362 * 255, 0.2893 * 255)
MISLABELED_NORM = (34.33, 75.80)
PHOTO_NORM = (0.0583 * 255, 0.2322 * 255)


def base(arg: str | None) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.model = "five_conv"
    c.task = "classify"  # or "regress", "complementary": see losses.py
    c.complementary_loss = "forward"  # task "complementary": forward, ure, nn or ga
    c.selftrain_threshold = 0.0  # > 0: add losses.self_training above this confidence
    c.selftrain_weight = 1.0
    c.expected_mse_weight = 0.0  # task "classify": add losses.expected_mse times this
    c.num_classes = 10  # network outputs (1 for a regressor)
    c.seeds = (0,)
    c.init = ""  # a run directory whose best params initialise this run
    c.batch_size = 32
    c.eval_batch_size = 500
    c.learning_rate = 1e-3
    c.lr_schedule = "constant"  # or "cosine": to 0 over num_epochs (a larger one on resume
    # stretches the cosine from the step reached)
    c.weight_decay = 1e-4  # torch Adam's L2 term, added to the gradient
    c.class_weights = (2.0, 2.0, 1.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0, 1.0)  # "tricky" 0, 1, 5
    c.num_epochs = 30  # an upper bound: early stopping ends the runs
    c.patience = 1
    c.steps_per_call = 0  # 0 auto, -1 whole epoch per call, N > 0 N steps; see steps.py
    c.seed_axis = "auto"  # vmap or loop over seeds in the one program; see steps.seed_axis
    c.eval_train_split = False  # also report eval-mode accuracy on the training split
    c.original = ""  # a key of originals.DIGITSUM: print the original's tables beside ours
    c.nonfinite = "stop"  # a NaN/inf loss stops the run; "skip" leaves such steps undone
    c.parallel = "none"  # "data": the batch sharded over every device (all processes)
    c.compute_dtype = "float32"  # or "bfloat16": forward and backward in bf16, float32
    # master params and Adam (mixed precision; float32 is the originals' setting)

    c.data = d = ml_collections.ConfigDict()
    d.name = "mnist"
    d.path = ""  # the original's files, when a user has them
    d.mnist_dir = ""  # default: $JAXDIGITS_DATA_DIR
    d.label_seed = 0
    d.val_fraction = 0.1
    d.image_size = (90, 120)
    d.mean, d.std = MNIST_TEST_NORM
    d.test_mean, d.test_std = MNIST_TEST_NORM
    d.limit = 0  # train on a fixed random subset of N pool images (0: all)
    d.test_limit = 0  # likewise for the test split
    d.shift = 0  # random shifts of up to N pixels (of the stored images) in training
    d.augment = False
    d.rotation_deg = 30.0
    d.translate = 0.1
    d.noise_std = 0.1
    return c


def digitsum(arg: str | None) -> ml_collections.ConfigDict:
    """The digit-sum study: Adam 1e-3, batch 64, 15 epochs, no early stopping, 3 seeds."""
    c = base(arg)
    c.model = "sum_cnn"
    c.task = "regress"
    c.num_classes = 1
    c.seeds = (0, 10, 42)
    c.batch_size = 64
    c.weight_decay = 0.0
    c.class_weights = ()
    c.num_epochs = 15
    c.patience = 0  # none: the original trained 15 epochs
    c.eval_train_split = True

    d = c.data
    d.name = "digitsum"
    d.size = 30_000  # generated pool, as the original's three files
    d.test_size = 10_000  # canvases of MNIST test digits
    d.generator_seed = 0  # the data is fixed; training seeds only split and shuffle it
    d.val_fraction = 0.2
    d.image_size = (40, 168)
    d.mean, d.std = 0.0, 255.0  # pixels / 255, nothing else
    d.test_mean, d.test_std = 0.0, 255.0
    d.extra_tests = ()  # e.g. ("anywhere-4", "anywhere-5"): see data.extra_tests
    return c


def args(arg: str | None) -> set[str]:
    known = {"smoke", "pretrained"}
    given = set(filter(None, (arg or "").split(",")))
    if given - known:
        raise ValueError(f"unknown config arg(s) {sorted(given - known)}; known: {sorted(known)}")
    return given


def smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A tiny subset and one short epoch: for tests and a first try on a laptop.

    At most two seeds are kept, so that the multi-seed path still runs.
    """
    c.seeds = tuple(c.seeds[:2])
    c.data.limit = 720  # 648 train images: 20 steps of 32, two calls of 10 on CPU
    c.data.test_limit = 500
    c.num_epochs = 1
    c.eval_batch_size = 64
    return c


def from_file(path, arg: str | None = None) -> ml_collections.ConfigDict:
    """What `--config PATH:ARG` gives: the config file's get_config(arg)."""
    path = pathlib.Path(path)
    spec = importlib.util.spec_from_file_location(f"config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


# Keys that earlier versions wrote and nothing reads any more ("progress_every": the epoch
# programs no longer call back to the host; progress is reported between calls).
RETIRED = ("progress_every",)


def with_defaults(saved: dict) -> dict:
    """A saved config.json, with keys added to `base()` since it was written at their
    defaults, and RETIRED keys dropped."""
    saved = {k: v for k, v in saved.items() if k not in RETIRED}

    def merge(defaults, given):
        out = dict(defaults)
        for k, v in given.items():
            out[k] = merge(defaults[k], v) if isinstance(defaults.get(k), dict) else v
        return out

    return merge(json.loads(base(None).to_json()), saved)


def load_saved(workdir) -> ml_collections.ConfigDict:
    """The config a run directory was trained with (its config.json, with_defaults)."""
    path = pathlib.Path(workdir) / output.CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; is {workdir} a jaxdigits run directory?")
    return ml_collections.ConfigDict(with_defaults(json.loads(path.read_text())))
