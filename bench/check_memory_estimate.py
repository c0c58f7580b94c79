"""Device memory of every training config: the trainer's estimate
(jaxdigits.runtime.memory_estimate) against what XLA allocates.

    python bench/check_memory_estimate.py  # every config in configs/, full size, compile only
    python bench/check_memory_estimate.py --smoke  # their :smoke variants
    python bench/check_memory_estimate.py --configs part3 digitsum_vgg
    python bench/check_memory_estimate.py --smoke --seed-axis vmap  # seeds batched, as on a GPU

Per config: the data as the trainer builds it, memory_estimate.estimate (traced, not
compiled), then the programs it traced compiled for real: one train step of
all seeds (memory_estimate.train_program, the body of the trainer's epoch programs)
and the eval program; compiled.memory_analysis() gives their argument,
output, alias, temp and generated-code bytes. "XLA total" is the resident
data and state (exact: tests/test_memory_estimate.py) plus the larger program's temp
and non-aliased output. On an accelerator each config also runs --steps
steps of the trainer's epoch program and one evaluation, and records the
device's peak_bytes_in_use (the CPU backend keeps no such count). Every
config runs in a child process, so that peaks and caches do not carry over.
Writes bench/results/<device>-<date>-memory[-smoke].json and .md, merged
into an earlier file of the same device and day (rows replaced by config).
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import re
import subprocess
import sys
import time

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # peaks of what is used
ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jaxdigits import data, defaults, epochs, output, steps  # noqa: E402
from jaxdigits.data import pipeline  # noqa: E402
from jaxdigits.runtime import memory_estimate  # noqa: E402

SCHEMA = 1
PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy")
FIELDS = ("argument", "output", "alias", "temp", "generated_code")


def config_names() -> list[str]:
    return sorted(p.stem for p in (ROOT / "configs").glob("*.py"))


def environment() -> dict:
    dev = jax.devices()[0]
    return {
        "device": output.device_name(),
        "platform": dev.platform,
        "jax_devices": jax.local_device_count(),
        "jax_platform_version": getattr(dev.client, "platform_version", None),
        "cpu": output.cpu_name(),
        "python": platform.python_version(),
        "versions": output.package_versions(PACKAGES),
        "date": datetime.date.today().isoformat(),
    }


def results_path(out_dir, env: dict, smoke: bool) -> pathlib.Path:
    slug = re.sub(r"[^a-z0-9]+", "-", env["device"].lower()).strip("-")
    return pathlib.Path(out_dir) / f"{slug}-{env['date']}-memory{'-smoke' if smoke else ''}.json"


def analysis(compiled) -> dict:
    """memory_analysis() as a dict of bytes (empty where the backend gives none)."""
    stats = compiled.memory_analysis()
    if stats is None:
        return {}
    out = {k: int(getattr(stats, f"{k}_size_in_bytes", 0)) for k in FIELDS}
    out["peak_memory"] = int(getattr(stats, "peak_memory_in_bytes", 0))
    return out


def device_peak(cfg, model, tx, ds, n_steps: int) -> int | None:
    """peak_bytes_in_use after n_steps of the trainer's epoch program and one evaluation of the
    validation split, on fresh per-seed state (None where the device keeps no count)."""
    device = jax.devices()[0]
    if "peak_bytes_in_use" not in (device.memory_stats() or {}):
        return None
    images, labels = jnp.asarray(ds.images), jnp.asarray(ds.labels)
    splits = [pipeline.split_indices(len(ds.labels), cfg.data.val_fraction, s) for s in cfg.seeds]
    train_idx, val_idx = (np.stack(x) for x in zip(*splits, strict=True))
    state = memory_estimate.initial_state(cfg, model, tx)
    keys = jnp.stack([jax.random.PRNGKey(s) for s in cfg.seeds])
    active = jnp.ones((len(cfg.seeds),), bool)
    part = train_idx[:, : n_steps * cfg.batch_size]
    epoch = epochs.make_train_epoch(model, tx, cfg)
    state["train"], _ = epoch(state["train"], state["frozen"], images, labels, part, keys, active)
    evaluate = steps.make_evaluate(model, cfg)
    params = state["train"]["params"]
    evaluate(params, state["frozen"], images, labels, val_idx, cfg.data.mean, cfg.data.std)
    return int(device.memory_stats()["peak_bytes_in_use"])


def measure(name: str, smoke: bool, n_steps: int, seed_axis: str = "auto") -> dict:
    """One config's row: the estimate, the compiled programs' analysis, the device's peak."""
    cfg = defaults.from_file(ROOT / "configs" / f"{name}.py", "smoke" if smoke else None)
    cfg.seed_axis = seed_axis
    ds = data.build(cfg.data)
    n, hw = len(ds.labels), ds.images.shape[1:]
    t0 = time.perf_counter()
    est = memory_estimate.estimate(cfg, n, len(ds.test_labels), hw, ds.test_images.shape[1:])
    row = {"config": name, "smoke": smoke, "model": cfg.model, "seeds": len(cfg.seeds)}
    row.update(batch_size=cfg.batch_size, eval_batch_size=cfg.eval_batch_size)
    row.update(seed_axis=steps.seed_axis(cfg), images=n, image_hw=list(hw))
    row.update(estimate=est, estimate_s=time.perf_counter() - t0)
    model, tx = memory_estimate.parts(cfg, n)
    state = memory_estimate.state_shapes(cfg, model, tx)
    train_args, eval_args = memory_estimate.program_args(cfg, state, n, hw)
    programs = {
        "train": (memory_estimate.train_program(model, tx, cfg), train_args),
        "eval": (steps.make_eval_batch(model, cfg), eval_args),
    }
    for key, (fn, args) in programs.items():
        t0 = time.perf_counter()
        row[key] = analysis(fn.lower(*args).compile())
        row[key]["compile_s"] = time.perf_counter() - t0
    programs = [r for r in (row["train"], row["eval"]) if "temp" in r]
    extra = [r["temp"] + r["output"] - r["alias"] for r in programs]
    if extra:
        row["xla_activations"] = max(extra)
        row["xla_total"] = est["data"] + est["state"] + max(extra)
    row["device_peak"] = device_peak(cfg, model, tx, ds, n_steps)
    row["available"] = memory_estimate.available_bytes()
    return row


def run_child(name: str, args) -> dict:
    """measure() in a child process: a fresh device, its own peak count."""
    cmd = [sys.executable, __file__, "--child", name, "--steps", str(args.steps)]
    cmd += ["--seed-axis", args.seed_axis]
    cmd += ["--smoke"] if args.smoke else []
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode or not lines:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        row = {"config": name, "smoke": args.smoke, "seed_axis": args.seed_axis}
        return dict(row, status="failed", reason=reason[:300])
    row = json.loads(lines[-1])
    row.update(status="ok", wall_s=time.perf_counter() - t0)
    return row


def _mb(n) -> str:
    return "—" if n is None else f"{n / memory_estimate.MB:,.1f}"


def markdown(results: dict) -> str:
    env = results["environment"]
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v)
    lines = [
        f"# Device memory per config: {env['device']} ({env['date']})",
        "",
        f"{versions}; backend {env['platform']}. MB = 2^20 bytes. Estimate: "
        "jaxdigits.runtime.memory_estimate.estimate, traced, not compiled "
        "(data + state + activations, the "
        "larger of a train step and an eval batch). XLA: compiled.memory_analysis() of the "
        "same train step and eval programs; XLA total = data + state + the larger program's "
        "temp and non-aliased output. Device peak: peak_bytes_in_use after a few steps of the "
        "trainer's epoch program and an evaluation (accelerators only).",
        "",
        "| config | seeds x batch | seed axis | data | state | est. act. train / eval "
        "| XLA act. train / eval | est. total | XLA total | est. / XLA | device peak |",
        "|" + "---|" * 11,
    ]
    for r in results["rows"]:
        if r.get("status") != "ok":
            lines.append(f"| {r['config']} | failed: {r.get('reason', '')} |" + " |" * 9)
            continue
        est, tr, ev = r["estimate"], r["train"], r["eval"]
        xla = [x["temp"] + x["output"] - x["alias"] if "temp" in x else None for x in (tr, ev)]
        ratio = est["total"] / r["xla_total"] if r.get("xla_total") else None
        cells = [
            r["config"] + (":smoke" if r["smoke"] else ""),
            f"{r['seeds']} x {r['batch_size']}",
            r["seed_axis"],
            _mb(est["data"]),
            _mb(est["state"]),
            f"{_mb(est['train_step'])} / {_mb(est['eval_batch'])}",
            f"{_mb(xla[0])} / {_mb(xla[1])}",
            _mb(est["total"]),
            _mb(r.get("xla_total")),
            "—" if ratio is None else f"{ratio:.2f}",
            _mb(r.get("device_peak")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def merge(path: pathlib.Path, new: dict) -> dict:
    """`new` over an earlier file of the same device and schema: rows replaced by config and
    seed axis."""
    if not path.exists():
        return new
    old = json.loads(path.read_text())
    if old.get("schema") != SCHEMA or old["environment"]["device"] != new["environment"]["device"]:
        raise ValueError(f"{path}: another device or schema; move it away to start afresh")
    rows = {_key(r): r for r in old["rows"]}
    rows.update({_key(r): r for r in new["rows"]})
    return dict(new, rows=sorted(rows.values(), key=_key))


def _key(row) -> tuple:
    return row["config"], row.get("seed_axis", "")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--configs", nargs="+", choices=config_names(), default=config_names())
    p.add_argument("--smoke", action="store_true", help="each config's :smoke variant")
    p.add_argument("--steps", type=int, default=3, help="steps run for the device peak")
    p.add_argument(
        "--seed-axis", choices=("auto", "vmap", "loop"), default="auto", help="config.seed_axis"
    )
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    p.add_argument("--child", help=argparse.SUPPRESS)  # measure one config, print its row
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.smoke, args.steps, args.seed_axis)))
        return {}
    env = environment()
    path = results_path(args.out, env, args.smoke)
    path.parent.mkdir(parents=True, exist_ok=True)
    results = {"schema": SCHEMA, "environment": env, "rows": []}
    merge(path, results)  # a file it cannot merge into stops it before any work
    for name in args.configs:
        row = run_child(name, args)
        results["rows"].append(row)
        total = row.get("estimate", {}).get("total")
        print(
            f"{name}: estimate {_mb(total)} MB, XLA {_mb(row.get('xla_total'))} MB "
            f"({row['status']})",
            flush=True,
        )
    results = merge(path, results)
    text = markdown(results)
    output.write_json(path, results)
    output.write_text(path.with_suffix(".md"), text)
    print(text)
    print(f"wrote {path} and {path.with_suffix('.md').name}")
    return results


if __name__ == "__main__":
    main()
