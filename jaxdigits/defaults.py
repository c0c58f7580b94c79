"""Settings shared by the experiment configs in configs/.

Each config file starts from its study's defaults, `mislabeled()` (the
mislabeled-MNIST study) or `digitsum()` (the digit-sum study), and changes
what its experiment changed. The arg after the colon (`configs/part3.py:smoke`, `:pretrained`,
or both, comma-separated) selects variants.
"""

import importlib.util
import json
import pathlib

import ml_collections

from jaxdigits import data, output

# Normalisation constants of the original, on the 0..255 pixel scale.
MNIST_TEST_NORM = (0.1362 * 255, 0.2893 * 255)
MISLABELED_NORM = (34.33, 75.80)
PHOTO_NORM = (0.0583 * 255, 0.2322 * 255)


def _shared() -> ml_collections.ConfigDict:
    """The keys every run has, at the values both studies share."""
    c = ml_collections.ConfigDict()
    c.model = ""
    c.task = "classify"  # or "regress", "complementary": see losses.py
    c.num_classes = 10  # network outputs (1 for a regressor)
    c.seeds = (0,)
    c.init = ""  # a run directory (or kept run) whose params initialise this run
    c.init_params = "best"  # which of them: "best" (lowest validation loss) or "last"
    # A run (or kept run) whose answers replace the mislabeled pool's labels (teacher.py)
    c.teacher = ""
    c.batch_size = 32
    c.eval_batch_size = 500
    c.learning_rate = 1e-3
    c.lr_schedule = "constant"  # or "cosine": to 0 over num_epochs (a larger one on resume
    # stretches the cosine from the step reached)
    c.weight_decay = 0.0  # torch Adam's L2 term, added to the gradient
    c.num_epochs = 15
    c.patience = 0  # epochs without a better validation loss before stopping; 0: never
    c.steps_per_call = 0  # 0 auto, -1 whole epoch per call, N > 0 N steps; see steps.py
    c.seed_axis = "auto"  # vmap or loop over seeds in the one program; see steps.seed_axis
    c.eval_train_split = False  # also report eval-mode accuracy on the training split
    c.decodes = ("argmax",)  # how test predictions are read: "argmax", "argmin" (one column each)
    c.original = ""  # a key of originals.DIGITSUM: print the original's tables beside ours
    c.nonfinite = "stop"  # a NaN/inf loss stops the run; "skip" leaves such steps undone
    c.parallel = "none"  # "data": the batch sharded over every device (all processes)
    # "tensorboard": event files in RUN_DIR/tensorboard too; "wandb": a W&B run in RUN_DIR/wandb
    # (offline without WANDB_API_KEY); both: "tensorboard,wandb" (jaxdigits/tracking.py)
    c.log = ""
    c.compute_dtype = "float32"  # or "bfloat16": forward and backward in bf16, float32
    # master params and Adam (mixed precision; float32 is the originals' setting)

    c.loss = loss = ml_collections.ConfigDict()  # the task's loss and the terms added to it
    loss.class_weights = ()  # task "classify": per-class weights of the cross-entropy
    loss.complementary = "forward"  # task "complementary": forward, ure, nn or ga
    loss.selftrain_threshold = 0.0  # > 0: add losses.self_training above this confidence
    loss.selftrain_weight = 1.0
    loss.selftrain_view = "same"  # or "strong": FixMatch (losses.SELFTRAIN_VIEWS)
    loss.expected_mse_weight = 0.0  # task "classify": add losses.expected_mse times this

    c.data = d = ml_collections.ConfigDict()
    d.name = ""
    d.path = ""  # the original's files, when a user has them
    d.mnist_dir = ""  # default: $JAXDIGITS_DATA_DIR
    d.source = "auto"  # where MNIST comes from when no folder is named (data/fetch.py)
    d.mirror = ""  # a base URL holding MNIST's four .gz files (default: data/fetch.py)
    d.label_seed = 0
    d.val_fraction = 0.1
    d.image_size = (28, 28)
    d.mean, d.std = MNIST_TEST_NORM
    d.test_mean, d.test_std = MNIST_TEST_NORM
    d.limit = 0  # train on a fixed random subset of N pool images (0: all)
    d.test_limit = 0  # likewise for the test split
    d.shift = 0  # random shifts of up to N pixels (of the stored images) in training
    d.squeeze = False  # drop random blank columns in training (pipeline.squeeze_columns)
    d.augment = False
    d.rotation_deg = 30.0
    d.translate = 0.1
    d.noise_std = 0.1
    return c


def mislabeled(arg: str | None = None) -> ml_collections.ConfigDict:
    """The mislabeled-MNIST study (Parts 1-3): 5conv1fc at 90x120, Adam 1e-3 with L2 1e-4,
    batch 32, class weights 2 on the "tricky" 0, 1 and 5, early stopping (patience 1)."""
    c = _shared()
    c.model = "five_conv"
    c.weight_decay = 1e-4
    c.loss.class_weights = (2.0, 2.0, 1.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0, 1.0)
    c.num_epochs = 30  # an upper bound: early stopping ends the runs
    c.patience = 1
    c.data.name = "mnist"
    c.data.image_size = (90, 120)
    return c


def digitsum(arg: str | None = None) -> ml_collections.ConfigDict:
    """The digit-sum study: the CNN regressor, Adam 1e-3, batch 64, 15 epochs, no early
    stopping, seeds 0, 10 and 42, on 30,000 canvases of 40x168 (pixels / 255)."""
    c = _shared()
    c.model = "sum_cnn"
    c.task = "regress"
    c.num_classes = 1
    c.seeds = (0, 10, 42)
    c.batch_size = 64
    c.eval_train_split = True

    d = c.data
    d.name = "digitsum"
    d.update(data.spec("digitsum").config_keys)  # the pool's and the test sets' sizes, seed
    d.val_fraction = 0.2
    d.image_size = (40, 168)
    d.mean, d.std = 0.0, 255.0  # pixels / 255, nothing else
    d.test_mean, d.test_std = 0.0, 255.0
    return c


def digitsum_from_sums(arg: str | None = None) -> ml_collections.ConfigDict:
    """The digit-sum study for the networks that read digits from the sums alone: the sum as
    a class (46: up to five digits), a cosine decay, random 3 px shifts of the whole canvas,
    and the test digits also anywhere, as 3 and 5 digits, touching and overlapping."""
    c = digitsum(arg)
    c.task = "classify"
    c.num_classes = 46
    c.lr_schedule = "cosine"
    c.eval_train_split = False
    c.data.shift = 3
    c.data.extra_tests = ("anywhere-4", "anywhere-3", "anywhere-5", "touching-4", "overlap-4")
    return c


STUDIES = {"mislabeled": mislabeled, "digitsum": digitsum}


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
# Keys that earlier versions wrote under another name: old -> new (dotted).
MOVED = {
    "class_weights": "loss.class_weights",
    "complementary_loss": "loss.complementary",
    "selftrain_threshold": "loss.selftrain_threshold",
    "selftrain_weight": "loss.selftrain_weight",
    "expected_mse_weight": "loss.expected_mse_weight",
}


def _upgrade(saved: dict) -> dict:
    """A config.json of an earlier version in today's names: RETIRED keys dropped, MOVED
    ones moved, and `decodes` as the trainer then chose it (argmin too for cross-entropy on
    the mislabeled set)."""
    saved = {k: v for k, v in saved.items() if k not in RETIRED}
    for old, new in MOVED.items():
        if old in saved:
            group, key = new.split(".")
            saved.setdefault(group, {}).setdefault(key, saved.pop(old))
    if "decodes" not in saved:
        naive = (
            saved.get("task") == "classify" and saved.get("data", {}).get("name") == "mislabeled"
        )
        saved["decodes"] = ["argmax", "argmin"] if naive else ["argmax"]
    return saved


def with_defaults(saved: dict) -> dict:
    """A saved config.json in today's names (_upgrade), with keys added since it was
    written at their defaults (those of its study: digit sums or mislabeled MNIST)."""
    saved = _upgrade(saved)

    def merge(defaults, given):
        out = dict(defaults)
        for k, v in given.items():
            out[k] = merge(defaults[k], v) if isinstance(defaults.get(k), dict) else v
        return out

    study = "digitsum" if saved.get("data", {}).get("name") == "digitsum" else "mislabeled"
    return merge(json.loads(STUDIES[study]().to_json()), saved)


def load_saved(workdir) -> ml_collections.ConfigDict:
    """The config a run directory was trained with (its config.json, with_defaults)."""
    path = pathlib.Path(workdir) / output.CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; is {workdir} a jaxdigits run directory?")
    return ml_collections.ConfigDict(with_defaults(json.loads(path.read_text())))
