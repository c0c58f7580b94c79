"""Training throughput of every network, JAX against PyTorch, on the device it runs on.

    python bench/throughput.py            # the full grid (meant for a GPU): every mode
    python bench/throughput.py --quick    # a reduced grid, for a CPU (its time: docs/speed.md)
    python bench/throughput.py --networks none --end-to-end full \\
        --end-to-end-runs part3 --end-to-end-epochs 1   # one full-size Part III epoch only

Per network, batch size and precision, every mode of both frameworks is
built on the same weights (ported from the PyTorch model), optimizer and
batches; the steps of a timed call are fixed per network and batch (long
enough to take about --call-seconds). Each mode is called twice untimed
(compilation, warm-up), then the modes of that precision are timed in turn,
their order rotated every repeat, so drift hits all of them alike. torch.compile
starts afresh (torch._dynamo.reset) for each network, batch and precision, and a
compiled mode that recompiles or runs eagerly is reported failed, not timed (see
bench/torch_bench.py); a mode that cannot run on this machine (CUDA graphs without
CUDA) is reported unavailable. Prints a markdown table and writes
bench/results/<device>-<date>[-quick].json and .md, merged into an earlier file of the
same device and day.

--compilation-cache PATH|off points JAX's persistent compilation cache (before anything
compiles; default: $JAXDIGITS_COMPILATION_CACHE, else JAX's, else ~/.cache/jaxdigits/jax);
with a warm cache JAX's first calls and end-to-end compile times read programs from disk,
so the folder in use is recorded in the results' settings.
"""

import argparse
import copy
import dataclasses
import gc
import math
import os
import pathlib
import sys
import time

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # leave GPU memory to torch too
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))


from bench import end_to_end, jax_bench, networks, results_markdown, torch_bench  # noqa: E402
from jaxdigits import output
from jaxdigits.runtime import compile_cache  # noqa: E402

QUICK = {
    "batch_sizes": (32, 64),
    "precisions": ("f32",),
    "jax_modes": ("step", "fused"),
    "torch_modes": ("eager", "eager_cl"),
    "repeats": 3,
    "call_seconds": 0.5,
}
FULL = {
    "batch_sizes": (32, 64, 256, 1024),
    "precisions": ("f32", "bf16"),
    "jax_modes": jax_bench.MODES,
    "torch_modes": torch_bench.MODES,  # all: eager, eager_cl, compile, compile_graphs
    "repeats": 5,
    "call_seconds": 1.0,
}
MAX_STEPS = 200  # per timed call
MAX_BATCH_BYTES = 1 << 30  # of input batches per call: every mode holds its own copy


def _csv(kind, choices=None):
    def parse(text):
        items = tuple(kind(t) for t in text.split(",") if t)
        bad = [t for t in items if choices is not None and t not in choices]
        if not items or bad:
            raise argparse.ArgumentTypeError(f"{text!r}: choose from {', '.join(choices or ())}")
        return items

    return parse


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="the reduced grid: " + str(QUICK))
    names = tuple(networks.NETWORKS)
    p.add_argument(
        "--networks",
        type=_csv(str, (*names, "none")),
        default=names,
        help="networks to time (none: only the end-to-end runs)",
    )
    p.add_argument("--batch-sizes", type=_csv(int))
    p.add_argument("--precisions", type=_csv(str, tuple(jax_bench.DTYPES)))
    p.add_argument("--jax-modes", type=_csv(str, jax_bench.MODES))
    p.add_argument("--torch-modes", type=_csv(str, torch_bench.MODES))
    p.add_argument("--repeats", type=int)
    p.add_argument("--steps", type=int, help="steps per timed call (default: calibrated)")
    p.add_argument("--call-seconds", type=float, help="calibrate a timed call to about this")
    p.add_argument(
        "--end-to-end",
        choices=("auto", "full", "quick", "toy", "none"),
        default="auto",
        help="whole runs: full size, shrunk, a few steps (toy: checks the wiring only), or none"
        " (auto: quick with --quick, else full)",
    )
    runs = tuple(end_to_end.RUNS)
    p.add_argument("--end-to-end-runs", type=_csv(str, runs), default=runs)
    p.add_argument(
        "--end-to-end-epochs",
        type=int,
        help="epochs of each end-to-end run (default: the original's; 1 with --quick)",
    )
    p.add_argument(
        "--compilation-cache",
        metavar="PATH|off",
        help="JAX's persistent compilation cache folder, or off (default: the environment's)",
    )
    p.add_argument(
        "--vgg-head",
        type=_csv(int),
        metavar="H1,H2",
        help="hidden sizes of vgg_regressor's head (default: the original's 4096,256); a small"
        " one for dry runs, whose 100 M-parameter head is most of their time",
    )
    p.add_argument("--out", default=str(networks.ROOT / "bench" / "results"))
    args = p.parse_args(argv)
    grid = QUICK if args.quick else FULL
    for key, value in grid.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if "none" in args.networks:
        if len(args.networks) > 1:
            p.error("--networks: none stands alone")
        args.networks = ()
    counts = (*args.batch_sizes, args.repeats, args.steps, args.end_to_end_epochs)
    if any(n is not None and n < 1 for n in counts):
        p.error("--batch-sizes, --repeats, --steps and --end-to-end-epochs must be positive")
    if args.vgg_head and (len(args.vgg_head) != 2 or min(args.vgg_head) < 1):
        p.error(f"--vgg-head: two positive sizes H1,H2, not {','.join(map(str, args.vgg_head))}")
    if args.end_to_end == "auto":
        args.end_to_end = "quick" if args.quick else "full"
    return args


def _calibrate(model, params, cfg, batch, args) -> int:
    """Steps per timed call: about args.call_seconds of JAX float32 steps, at most MAX_STEPS
    and MAX_BATCH_BYTES of input batches."""
    if args.steps:
        return args.steps
    x, y = networks.batches(cfg, batch, 2)
    run = jax_bench.build("step", model, params, cfg, x, y)
    run()
    t0 = time.perf_counter()
    run()
    per_step = (time.perf_counter() - t0) / 2
    most = min(MAX_STEPS, max(1, MAX_BATCH_BYTES // x[0].nbytes))
    return max(1, min(most, math.ceil(args.call_seconds / per_step)))


def measure(net, models, batch, args, flops_per_image, peaks) -> list[dict]:
    """Rows for one network and batch size: per precision, every mode timed interleaved.
    `models`: net.models(), built once for all batch sizes (the VGG's takes seconds)."""
    cfg = net.config()
    model, params, torch_model = models
    n_steps = _calibrate(model, params, cfg, batch, args)
    x, y = networks.batches(cfg, batch, n_steps, seed=1)
    rows = []
    for precision in args.precisions:
        rows += _measure_precision(net.name, cfg, batch, precision, args, models, x, y)
    for row in rows:
        if row.get("images_per_s") and flops_per_image:
            row["tflops"] = flops_per_image * row["images_per_s"] / 1e12
            peak = peaks.get(row["precision"])
            row["peak_fraction"] = row["tflops"] / peak if peak else None
    return rows


def _measure_precision(name, cfg, batch, precision, args, models, x, y) -> list[dict]:
    model, params, torch_model = models
    n_steps = x.shape[0]
    if args.torch_modes:  # torch.compile afresh for each network, batch and precision
        torch_bench.reset_compiler()
    variants = [("jax", m) for m in args.jax_modes] + [("torch", m) for m in args.torch_modes]
    rows, runs = [], {}
    for framework, mode in variants:
        row = {"network": name, "batch": batch, "precision": precision}
        row.update(framework=framework, mode=mode, steps_per_call=n_steps)
        rows.append(row)
        try:
            t0 = time.perf_counter()
            if framework == "jax":  # params stay as given: JAX copies them to the device
                run = jax_bench.build(mode, model, params, cfg, x, y, precision)
            else:  # torch trains its module in place
                run = torch_bench.build(mode, copy.deepcopy(torch_model), cfg, x, y, precision)
            run()  # compile
            row["first_call_s"] = time.perf_counter() - t0
            run()  # warm-up
            runs[len(rows) - 1] = (run, [])
        except (jax_bench.Unavailable, torch_bench.Unavailable) as e:
            row.update(status="unavailable", reason=str(e))
        except Exception as e:  # a mode broken on this machine is reported, not fatal
            row.update(status="failed", reason=_reason(e))
    for r in range(args.repeats):
        order = list(runs)
        if not order:
            break
        shift = r % len(order)
        for i in order[shift:] + order[:shift]:
            run, samples = runs[i]
            try:
                t0 = time.perf_counter()
                run()
                samples.append(batch * n_steps / (time.perf_counter() - t0))
            except Exception as e:  # e.g. a torch.compile recompile: the row is not timed
                rows[i].update(status="failed", reason=_reason(e), samples=samples)
                del runs[i]
    for i, (_, samples) in runs.items():
        row = rows[i]
        row.update(status="ok", samples=samples, **results_markdown.summarise(samples))
        call_s = batch * n_steps / row["images_per_s"]
        row["compile_s"] = max(row["first_call_s"] - call_s, 0.0)
    del runs
    gc.collect()
    if torch_bench.device().type == "cuda":
        import torch

        torch.cuda.empty_cache()
    return rows


def _reason(e: Exception) -> str:
    return f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"


def main(argv=None):
    args = parse_args(argv)
    cache = compile_cache.setup(args.compilation_cache)  # before anything compiles
    torch_settings = torch_bench.configure()
    env = results_markdown.environment()
    path = results_markdown.results_path(args.out, env, args.quick)
    try:  # before any work: a results file that cannot be written or merged stops it now
        path.parent.mkdir(parents=True, exist_ok=True)
        old = results_markdown.previous(path, env["device"])
    except (OSError, ValueError) as e:
        sys.exit(f"error: {e}")
    print(
        f"device: {env['device']}, {env['jax_devices']} JAX device(s); torch: {env['torch_device']}"
    )
    results = {
        "schema": results_markdown.SCHEMA,
        "environment": env,
        "settings": {
            **{k: getattr(args, k) for k in (*FULL, "quick", "steps", "networks")},
            **{k: getattr(args, k) for k in ("end_to_end", "end_to_end_runs", "vgg_head")},
            "end_to_end_epochs": args.end_to_end_epochs,
            "compilation_cache": cache and str(cache),
            "torch": torch_settings,
        },
        "network_gflops_per_image": {},
        "throughput": [],
        "end_to_end": [],
    }
    for name in args.networks:
        net = networks.NETWORKS[name]
        if name == "vgg_regressor" and args.vgg_head:
            net = dataclasses.replace(net, changes=(("vgg_head", args.vgg_head),))
        models = net.models()
        model, params, _ = models
        cfg = net.config()
        x, y = networks.batches(cfg, args.batch_sizes[0], 1)
        flops = jax_bench.flops_per_image(model, params, cfg, x, y)
        results["network_gflops_per_image"][name] = flops and flops / 1e9
        for batch in args.batch_sizes:
            rows = measure(net, models, batch, args, flops, env["peak_tflops"])
            results["throughput"] += rows
            for r in rows:
                rate = _rate(r)
                print(f"{name} b{batch} {r['precision']} {r['framework']} {r['mode']}: {rate}")
    if args.end_to_end != "none":
        if results["throughput"]:  # kept, should a whole run fail (no MNIST, say)
            _write(path, old, results)
        quick, toy = args.end_to_end in ("quick", "toy"), args.end_to_end == "toy"
        for run in args.end_to_end_runs:
            for fw, fn in (("jax", end_to_end.run_jax), ("torch", end_to_end.run_torch)):
                record = fn(run, quick, epochs=args.end_to_end_epochs, toy=toy)
                record["quick"] = quick
                results["end_to_end"].append(record)
                print(
                    f"end to end {run} {fw} ({record['recipe']}, {record['epochs']} epoch(s)): "
                    f"{record['wall_s']:.1f} s, compile {record['compile_s']:.1f} s"
                )
    results, text = _write(path, old, results)
    print(text)
    print(f"wrote {path} and {path.with_suffix('.md').name}")
    return results


def _write(path, old, results) -> tuple[dict, str]:
    """`results` merged into the file's earlier ones (`old`), written as JSON and markdown."""
    merged = results_markdown.merge(old, results)
    text = results_markdown.markdown(merged)
    output.write_json(path, merged)
    output.write_text(path.with_suffix(".md"), text)
    return merged, text


def _rate(row) -> str:
    if row.get("images_per_s"):
        return f"{row['images_per_s']:,.0f} images/s (spread {100 * row['spread']:.0f} %)"
    return f"{row['status']}: {row['reason']}"


if __name__ == "__main__":
    main()
