"""Before and after: two results files of bench/throughput.py, network by network.

    python bench/compare.py BEFORE.json AFTER.json [--out FILE.md]

For each network, batch and precision in both files: the best JAX mode and
the best PyTorch eager mode of each run, their ratio (measured side by side
in that run, so it compares across runs even where the machine's speed
drifted), and the change of the best JAX figure from one run to the other.
"""

import argparse
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from bench import results_markdown  # noqa: E402
from jaxdigits import output  # noqa: E402


def load(path: str) -> dict:
    try:
        results = json.loads(pathlib.Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable results file ({e})") from e
    if results.get("schema") != results_markdown.SCHEMA or "throughput" not in results:
        raise ValueError(
            f"{path}: not a bench/throughput.py results file (schema {results_markdown.SCHEMA})"
        )
    return results


def _describe(results, label):
    env = results["environment"]
    v = env["versions"]
    return f"- {label}: {env['device']}, {env['date']}, jax {v['jax']}, torch {v['torch']}"


def markdown(before: dict, after: dict, labels=("before", "after")) -> str:
    old, new = results_markdown.by_setting(before), results_markdown.by_setting(after)
    lines = [
        f"# Training throughput, {labels[0]} and {labels[1]}",
        "",
        _describe(before, labels[0]),
        _describe(after, labels[1]),
        "",
        "Images per second, the best JAX mode and the best PyTorch eager mode (NCHW or "
        "channels_last) of each run; JAX / eager is measured side by side within one run.",
        "",
        f"| network | batch | precision | JAX {labels[0]} | eager {labels[0]} | "
        f"JAX / eager {labels[0]} | JAX {labels[1]} | eager {labels[1]} | "
        f"JAX / eager {labels[1]} | JAX {labels[1]} / {labels[0]} |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in [k for k in new if k in old]:
        cells = [key[0], str(key[1]), key[2]]
        jax_best = []
        for rows in (old[key], new[key]):
            best = results_markdown._best(rows, "jax")
            eager = results_markdown._best(rows, "torch", ("eager", "eager_cl"))
            jax_best.append(best)
            cells += [
                results_markdown._fmt(best and best["images_per_s"]),
                results_markdown._fmt(eager and eager["images_per_s"]),
                results_markdown._ratio(best, eager),
            ]
        cells.append(results_markdown._ratio(jax_best[1], jax_best[0]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("before")
    p.add_argument("after")
    p.add_argument("--out", help="also write the table to this markdown file")
    args = p.parse_args(argv)
    try:
        text = markdown(load(args.before), load(args.after))
        if args.out:
            output.write_text(pathlib.Path(args.out), text)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
