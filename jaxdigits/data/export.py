"""Write a generated dataset in the original's file layout.

    python -m jaxdigits.data.export --out data/mnistTask3      # folders 0..9 of PNGs
    python -m jaxdigits.data.export --out data/mnistTask3.zip  # the same, zipped
    python -m jaxdigits.data.export --dataset digitsum --out data/digitsum

mislabeled ("mnistTask3"): folder k holds images of every digit but k;
each PNG is named by its index in MNIST train. digitsum: the original's
data0.npy..data2.npy and lab0.npy..lab2.npy (30,000 canvases of four MNIST
train digits and their sums), as the digit-sum configs generate them.
"""

import argparse
import sys

from jaxdigits.data import digitsum, image_folder, mislabeled
from jaxdigits.data.errors import DataError


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of images")
    return int(text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder, or a path ending in .zip")
    parser.add_argument("--dataset", choices=("mislabeled", "digitsum"), default="mislabeled")
    parser.add_argument("--seed", type=int, default=0, help="seed of the wrong labels / canvases")
    parser.add_argument("--size", type=_positive, default=digitsum.SIZE, help="digitsum: images")
    parser.add_argument("--mnist-dir", default="", help="MNIST IDX folder ($JAXDIGITS_DATA_DIR)")
    args = parser.parse_args(argv)
    try:
        if args.dataset == "digitsum":
            images, sums, _ = digitsum.generate(args.size, args.seed, "train", args.mnist_dir)
            digitsum.save_original(args.out, images, sums)
            print(f"wrote {len(images)} canvases to {args.out}/data0-2.npy, lab0-2.npy")
            return
        images, wrong, _ = mislabeled.generate(args.seed, args.mnist_dir)
        names = [f"{i:05d}" for i in range(len(images))]
        image_folder.write(args.out, images, [str(k) for k in wrong], names)
    except (DataError, OSError) as e:  # OSError: --out cannot be written
        sys.exit(f"error: {e}")
    print(f"wrote {len(images)} images in folders 0..9 to {args.out}")


if __name__ == "__main__":
    main()
