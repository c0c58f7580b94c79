"""The numbers the original studies reported, for side-by-side tables.

Source: ../shared/ORIGINAL_EXPERIMENTS.md ("Reported results" of both studies).
Accuracy in %; for the digit sums: the rounded prediction (or argmax) equals the sum.
"""

# Study A, Part 3, as reported (ORIGINAL_EXPERIMENTS.md): one GPU, batch 32, 4 epochs.
# (label, our config that reproduces it, test acc %, val acc % vs its wrong labels, seconds)
MISLABELED = (
    ("scratch", "configs/part3.py", 0.20, 11.55, 6 * 60 + 16),
    ("from Part 1 network", "configs/part3.py:pretrained", 0.19, 11.03, 6 * 60 + 57),
)
MISLABELED_EPOCHS = 4
MISLABELED_DEVICE = "one GPU (model not reported)"


# model -> seed -> (validation accuracy, training accuracy)
DIGITSUM = {
    "cnn_regressor": {0: (11.42, 21.90), 10: (10.92, 22.22), 42: (10.65, 18.16)},
    "cnn_classifier": {0: (6.70, 52.36), 10: (8.00, 76.92), 42: (7.70, 68.08)},
    "vgg_regressor": {0: (10.23, 9.98), 10: (7.83, 8.67), 42: (9.12, 9.29)},
}

DIGITSUM_NAME = {
    "cnn_regressor": "CNN regressor",
    "cnn_classifier": "CNN classifier",
    "vgg_regressor": "VGG regressor",
}


def _cell(value):
    return "-" if value is None else f"{value:.2f} %"


def digitsum_tables(name: str, seeds, per_seed: list[dict]) -> str:
    """The original's two tables (validation, training accuracy) with ours beside them."""
    reported = DIGITSUM[name]
    parts = []
    for title, key, col in (
        ("Validation accuracy", "val_accuracy", 0),
        ("Training accuracy", "train_accuracy", 1),
    ):
        lines = [f"{title} ({name}):", "", "| seed | ours | original |", "|---|---|---|"]
        for seed, r in zip(seeds, per_seed, strict=True):
            original = reported[seed][col] if seed in reported else None
            ours = 100 * r[key] if key in r else None
            lines.append(f"| {seed} | {_cell(ours)} | {_cell(original)} |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"
