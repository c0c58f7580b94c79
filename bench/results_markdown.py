"""What the bench records besides its timings (device, versions, peaks) and how it prints them."""

import datetime
import json
import pathlib
import platform
import re
import statistics
import subprocess

import jax

from bench import jax_bench, torch_bench
from jaxdigits import output

SCHEMA = 1
# Dense tensor-core peaks (TFLOP/s, without 2:4 sparsity: half the datasheets' starred
# figures) by device kind, the most specific name first, matched as whole words (L4 is not
# L40S): f32 is TF32, as float32 matmuls and convolutions run on these GPUs in both
# frameworks; bf16 is bf16. The "% of peak" of a row is against its precision's peak.
PEAK_TFLOPS = (
    ("H100 PCIe", {"f32": 378.0, "bf16": 756.5}),
    ("H100 NVL", {"f32": 417.5, "bf16": 835.5}),
    ("H100", {"f32": 494.7, "bf16": 989.4}),  # SXM (device kind "NVIDIA H100 80GB HBM3")
    ("H200 NVL", {"f32": 417.5, "bf16": 835.5}),
    ("H200", {"f32": 494.7, "bf16": 989.4}),  # SXM
    ("A100", {"f32": 156.0, "bf16": 312.0}),
    ("L4", {"f32": 60.0, "bf16": 121.0}),
)
PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy", "torch", "torchvision")


def _driver() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout else None


def peak_tflops(device: str, tf32: bool) -> dict:
    """{"f32": TF32 peak or None, "bf16": peak or None} of a device kind (None: not known)."""
    for key, peaks in PEAK_TFLOPS:
        if re.search(rf"(?<!\w){re.escape(key)}(?!\w)", device):
            return {"f32": peaks["f32"] if tf32 else None, "bf16": peaks["bf16"]}
    return {"f32": None, "bf16": None}


def _peaks(env: dict) -> dict:
    """The peaks of a results file; one written before the per-precision peaks knew only the
    bf16 peak, so its float32 rows get none."""
    if "peak_tflops" in env:
        return env["peak_tflops"]
    return {"f32": None, "bf16": env.get("bf16_peak_tflops")}


def environment() -> dict:
    import torch

    dev = jax.devices()[0]
    cpu = output.cpu_name()
    name = cpu if dev.platform == "cpu" else dev.device_kind
    # TF32: float32 matmuls and convolutions of both frameworks on a CUDA GPU of compute
    # capability 8.0 or more (XLA's default precision there; torch_bench.configure).
    cuda = dev.platform == "gpu" and torch.cuda.is_available()
    tf32 = cuda and torch.cuda.get_device_capability() >= (8, 0)
    return {
        "device": name,
        "platform": dev.platform,
        "jax_devices": jax.local_device_count(),
        "jax_platform_version": getattr(dev.client, "platform_version", None),
        "torch_device": str(torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"),
        "cuda": torch.version.cuda,
        "driver": _driver(),
        "cpu": cpu,
        "python": platform.python_version(),
        "versions": output.package_versions(PACKAGES),
        "tf32": tf32,
        "peak_tflops": peak_tflops(name, tf32) if cuda else {"f32": None, "bf16": None},
        "date": datetime.date.today().isoformat(),
    }


def results_path(out_dir, env: dict, quick: bool) -> pathlib.Path:
    slug = re.sub(r"[^a-z0-9]+", "-", env["device"].lower()).strip("-")
    return pathlib.Path(out_dir) / f"{slug}-{env['date']}{'-quick' if quick else ''}.json"


def previous(path: pathlib.Path, device: str) -> dict | None:
    """The results already in `path`, to merge into (None if there are none). Read before the
    bench runs, so that a file it cannot merge into stops it before any work is lost."""
    if not path.exists():
        return None
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable results file ({e}); move it away") from e
    if old.get("schema") != SCHEMA or old.get("environment", {}).get("device") != device:
        raise ValueError(f"{path}: another device or schema; move it away to start afresh")
    return old


def merge(old: dict | None, new: dict) -> dict:
    """`new` over the earlier results of the same device and day: its rows replace those with
    the same key, the others stay (so a grid can be run in parts, e.g. a network per call)."""
    if old is None:
        return new

    def rows(key, name):
        merged = {key(r): r for r in old[name]}
        merged.update({key(r): r for r in new[name]})
        return list(merged.values())

    out = dict(new)
    out["network_gflops_per_image"] = {
        **old["network_gflops_per_image"],
        **new["network_gflops_per_image"],
    }
    out["throughput"] = rows(row_key, "throughput")
    out["end_to_end"] = rows(end_to_end_key, "end_to_end")
    return out


def row_key(r: dict) -> tuple:
    return (r["network"], r["batch"], r["precision"], r["framework"], r["mode"])


def end_to_end_key(r: dict) -> tuple:
    """A JAX run with a cold and with a warm compilation cache are two rows."""
    return (r["run"], r["framework"], r["quick"], r["epochs"], r.get("cache", ""))


def by_setting(results: dict) -> dict:
    """The throughput rows grouped by (network, batch, precision), in the file's order."""
    groups = {}
    for r in results["throughput"]:
        groups.setdefault((r["network"], r["batch"], r["precision"]), []).append(r)
    return groups


def summarise(samples: list[float]) -> dict:
    med = statistics.median(samples)
    return {
        "images_per_s": med,
        "min": min(samples),
        "max": max(samples),
        "spread": (max(samples) - min(samples)) / med if med else None,
    }


def _fmt(value, digits=0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def _best(rows, framework, modes=None):
    ok = [r for r in rows if r["framework"] == framework and r.get("images_per_s")]
    ok = [r for r in ok if not modes or r["mode"] in modes]
    return max(ok, key=lambda r: r["images_per_s"], default=None)


def _ratio(a, b) -> str:
    if not a or not b:
        return "—"
    return f"{a['images_per_s'] / b['images_per_s']:.2f}x"


def _cache(r: dict) -> str:
    """A JAX run's compilation cache: cold or warm (hits / misses); — for torch and for
    files written before the cache was counted."""
    if "cache" not in r:
        return "—"
    if r["cache"] == "off":
        return "off"
    return f"{r['cache']} ({r['cache_hits']} / {r['cache_misses']})"


def _recipe(r: dict) -> str:
    """Records written before they named theirs ran the JAX trainer and the torch loop."""
    return r.get("recipe") or ("loop" if r["framework"] == "torch" else "trainer")


def precision_label(precision: str, env: dict) -> str:
    """f32 says where its matmuls and convolutions run in TF32 (both frameworks)."""
    return "f32 (TF32 matmuls)" if precision == "f32" and env.get("tf32") else precision


def markdown(results: dict) -> str:
    env = results["environment"]
    settings = results.get("settings", {})
    lines = [
        f"# Training throughput: {env['device']} ({env['date']})",
        "",
        f"jax {env['versions']['jax']}, flax {env['versions']['flax']}, "
        f"torch {env['versions']['torch']}; {env['jax_devices']} JAX device(s)"
        + (f"; CUDA {env['cuda']}, driver {env['driver']}. " if env.get("driver") else ". ")
        + "Images per second (median of interleaved repeats). Ratios, at the same precision: "
        "JAX step / torch eager, one jitted step per call against the best PyTorch eager mode "
        "(NCHW or channels_last), both dispatching every step from Python; JAX fused / torch "
        "compiled, the steps of a call fused in one XLA program against the best of "
        "torch.compile and torch.compile with CUDA graphs (compile_graphs). "
        + (
            "f32 (TF32 matmuls): float32 matmuls and convolutions run in TF32 in both "
            "frameworks (XLA's default precision on the GPU; torch with "
            'set_float32_matmul_precision("high") and cudnn.allow_tf32), and cuDNN autotunes '
            "torch's convolutions (cudnn.benchmark) as XLA autotunes its own. "
            if env.get("tf32")
            else ""
        )
        + "% of peak: the best JAX mode against the dense peak of the row's precision (TF32 "
        "for f32, bf16 for bf16). An empty cell: not in this run's grid; —: no figure (a mode "
        "that failed or is unavailable here, listed below, or a peak not known for this "
        "device, as on a CPU).",
        "",
    ]
    jax_modes, torch_modes = jax_bench.MODES, torch_bench.MODES
    head = ["network", "batch", "precision"]
    head += [f"JAX {m}" for m in jax_modes] + [f"torch {m}" for m in torch_modes]
    head += ["JAX step / torch eager", "JAX fused / torch compiled", "JAX TFLOP/s", "% of peak"]
    if results["throughput"]:
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    peaks = _peaks(env)
    for (net, batch, precision), rows in by_setting(results).items():
        by_mode = {(r["framework"], r["mode"]): r for r in rows}
        cells = [net, str(batch), precision_label(precision, env)]
        for fw, modes in (("jax", jax_modes), ("torch", torch_modes)):
            for m in modes:
                r = by_mode.get((fw, m))
                cells.append(_fmt(r.get("images_per_s")) if r else "")
        best = _best(rows, "jax")
        tflops = best and best.get("tflops")
        peak = peaks.get(precision)
        cells += [
            _ratio(_best(rows, "jax", ("step",)), _best(rows, "torch", ("eager", "eager_cl"))),
            _ratio(
                _best(rows, "jax", ("fused",)),
                _best(rows, "torch", ("compile", "compile_graphs")),
            ),
            _fmt(tflops, 2),
            _fmt(tflops and peak and 100 * tflops / peak, 1),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    skipped = [r for r in results["throughput"] if not r.get("images_per_s")]
    if skipped:
        lines += ["", "Not measured:"]
        lines += [
            f"- {r['network']} batch {r['batch']} {r['precision']} {r['framework']} "
            f"{r['mode']}: {r['status']}: {r['reason']}"
            for r in skipped
        ]
    if results["end_to_end"]:
        lines += [""] if lines[-1] else []
        lines += [
            "End to end (one seed; data, training, validation each epoch, test):",
            "",
            "| run | framework | recipe | epochs | batch | JAX cache | wall s | compile s "
            "| steady s | test acc |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in results["end_to_end"]:
            lines.append(
                f"| {r['run']} | {r['framework']} | {_recipe(r)} | {r['epochs']} | "
                f"{r['batch_size']} | {_cache(r)} | {r['wall_s']:.1f} | {r['compile_s']:.1f} | "
                f"{r['steady_s']:.1f} | {100 * r['test_accuracy']:.2f} % |"
            )
        if "compilation_cache" in settings:
            cache = settings["compilation_cache"]
            lines += [
                "",
                f"JAX's persistent compilation cache: {cache}; programs an earlier run "
                "compiled are read from it (JAX cache: hits / misses), so compile s counts "
                "only what was not there."
                if cache
                else "JAX's persistent compilation cache: off.",
            ]
    return "\n".join(lines) + "\n"
