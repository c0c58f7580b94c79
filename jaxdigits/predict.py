"""A trained run's predictions on a user's files, one CSV row per image.

    python -m jaxdigits.predict --run RUN_DIR --data PATH --out FILE.csv \
        [--seed S] [--which last|best] [--compilation_cache DIR|off]

- A digit-sum run and PATH a folder of the original's files (data0.npy..data2.npy, and
  lab0.npy..lab2.npy when known): columns file, index, prediction (the sum) and label when
  the lab files are there, in file order; the accuracy is printed when they are.
- A mislabeled-study run (or Part 1/2's) and PATH an mnistTask3-style folder or zip
  (`<k>/<image>`) or any folder of 28x28 digit images: columns file (its path inside PATH)
  and prediction (the digit). For a complementary-label run the prediction is the true class
  (argmax); a naive run's (cross-entropy on the wrong labels) gets argmax and argmin both. A
  run tested with the `shifts` decode also gets the argmax of the mean probabilities over
  each image and its 8 one-pixel shifts (column prediction_shifts).

Defaults: the run's first seed, and its last params, those behind the test accuracy the
report shows (--which best: the params of the lowest validation loss). Inputs are
normalised as the run's test split was. The CSV is written whole or not at all.
"""

import argparse
import csv
import io
import pathlib
import sys

import jax
import numpy as np

from jaxdigits import checkpoint, defaults, losses, models, output, saved_params, steps
from jaxdigits.data import DataError, digitsum, image_folder, mislabeled, pipeline
from jaxdigits.runtime import compile_cache


def _decodes(config) -> tuple[str, ...]:
    decodes = tuple(config.get("decodes", ("argmax",)))
    if config.task == "regress":
        return ("argmax",)
    if config.task == "complementary":  # argmin reads nothing from a complementary loss
        return tuple(d for d in decodes if d != "argmin") or ("argmax",)
    return decodes


def outputs(config, params, images: np.ndarray) -> np.ndarray:
    """The network's outputs on uint8 images, in batches of config.eval_batch_size."""
    model = models.build(config)
    size, mean, std = config.data.image_size, config.data.test_mean, config.data.test_std
    apply = jax.jit(
        lambda p, x: model.apply({"params": p}, pipeline.preprocess(x, size, mean, std))
    )
    batch = config.eval_batch_size
    parts = []
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        pad = batch - len(chunk)  # one program for every batch, the last one padded
        padded = np.concatenate([chunk, np.repeat(chunk[-1:], pad, axis=0)]) if pad else chunk
        parts.append(np.asarray(apply(params, padded))[: len(chunk)])
    return np.concatenate(parts)


def _read(config, params, images, out, decode) -> np.ndarray:
    """One decode's predictions from the outputs `out` on `images` (shifts: 8 more passes,
    as the run's own test, steps.make_eval_batch)."""
    if decode != "shifts":
        return np.asarray(losses.predictions(config.task, out, decode))
    views = np.asarray(steps.one_pixel_shifts(images))
    return np.asarray(steps.vote_over_shifts(np.stack([outputs(config, params, v) for v in views])))


def predict(run, data, seed=None, which="last") -> tuple[list[str], list[list], float | None]:
    """(CSV header, rows, accuracy or None) of run directory `run` on the files at `data`."""
    run = pathlib.Path(run)
    config = defaults.load_saved(run)
    seed = config.seeds[0] if seed is None else seed
    params = saved_params.seed_params(run, seed, which)
    decodes = _decodes(config)
    if config.data.name == "digitsum":
        files, sums = digitsum.load_files(data, labels=None)
        images = np.concatenate(files)
        names = [f"data{i}.npy" for i, f in enumerate(files) for _ in range(len(f))]
        index = [j for f in files for j in range(len(f))]
        pred = np.asarray(losses.predictions(config.task, outputs(config, params, images)))
        header, rows = (
            ["file", "index", "prediction"],
            [list(r) for r in zip(names, index, pred, strict=True)],
        )
        if sums is None:
            return header, rows, None
        labels = np.concatenate(sums)
        return (
            header + ["label"],
            [r + [int(y)] for r, y in zip(rows, labels, strict=True)],
            float(np.mean(pred == labels)),
        )
    images, names = image_folder.read_files(data, mislabeled.SIZE)
    out = outputs(config, params, images)
    preds = [_read(config, params, images, out, d) for d in decodes]
    header = ["file"] + (
        ["prediction"] if len(decodes) == 1 else [f"prediction_{d}" for d in decodes]
    )
    return header, [[n, *(int(p[i]) for p in preds)] for i, n in enumerate(names)], None


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m jaxdigits.predict", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--run", required=True, help="a run directory written by jaxdigits.train")
    parser.add_argument("--data", required=True, help="the files to predict (see above)")
    parser.add_argument("--out", required=True, help="the CSV to write")
    parser.add_argument("--seed", type=int, default=None, help="default: the run's first seed")
    parser.add_argument("--which", choices=("last", "best"), default="last")
    parser.add_argument(
        "--compilation_cache",
        default="",
        help=f"folder of JAX's compilation cache, or 'off' (default: ${compile_cache.ENV}, "
        f"else $JAX_COMPILATION_CACHE_DIR, else {compile_cache.default_dir()})",
    )
    args = parser.parse_args(argv)
    compile_cache.setup(args.compilation_cache)  # as train and evaluate: a second call reads it
    try:
        header, rows, accuracy = predict(args.run, args.data, args.seed, args.which)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        out = pathlib.Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(out, buffer.getvalue())
    except (DataError, FileNotFoundError, checkpoint.CheckpointError, ValueError, OSError) as e:
        sys.exit(f"error: {e}")
    print(f"wrote {len(rows)} predictions to {args.out}")
    if accuracy is not None:
        print(f"accuracy against the lab files: {100 * accuracy:.2f} %")


if __name__ == "__main__":
    main()
