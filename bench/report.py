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
# Dense bf16 tensor-core peak (TFLOP/s) by device kind; the fraction of peak is against it.
BF16_PEAK_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.4),  # SXM (device kind "NVIDIA H100 80GB HBM3")
    ("H200", 989.4),
    ("A100", 312.0),
    ("L4", 121.0),
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


def environment() -> dict:
    import torch

    dev = jax.devices()[0]
    cpu = output.cpu_name()
    name = cpu if dev.platform == "cpu" else dev.device_kind
    peak = next((p for key, p in BF16_PEAK_TFLOPS if key in name), None)
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
        "bf16_peak_tflops": peak,
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
    out["end_to_end"] = rows(lambda r: (r["run"], r["framework"], r["quick"]), "end_to_end")
    return out


def row_key(r: dict) -> tuple:
    return (r["network"], r["batch"], r["precision"], r["framework"], r["mode"])


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


def markdown(results: dict) -> str:
    env = results["environment"]
    lines = [
        f"# Training throughput: {env['device']} ({env['date']})",
        "",
        f"jax {env['versions']['jax']}, flax {env['versions']['flax']}, "
        f"torch {env['versions']['torch']}; {env['jax_devices']} JAX device(s)"
        + (f"; CUDA {env['cuda']}, driver {env['driver']}. " if env["driver"] else ". ")
        + "Images per second (median of interleaved repeats); ratios: the best JAX mode over "
        "the best PyTorch eager mode (NCHW or channels_last) and over torch.compile, "
        "at the same precision. An empty cell: not in this run's grid; —: no figure (a mode "
        "that failed, listed below, or a peak not known for this device).",
        "",
    ]
    jax_modes, torch_modes = jax_bench.MODES, torch_bench.MODES
    head = ["network", "batch", "precision"]
    head += [f"JAX {m}" for m in jax_modes] + [f"torch {m}" for m in torch_modes]
    head += ["JAX / eager", "JAX / compile", "JAX TFLOP/s", "% bf16 peak"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (net, batch, precision), rows in by_setting(results).items():
        by_mode = {(r["framework"], r["mode"]): r for r in rows}
        cells = [net, str(batch), precision]
        for fw, modes in (("jax", jax_modes), ("torch", torch_modes)):
            for m in modes:
                r = by_mode.get((fw, m))
                cells.append(_fmt(r.get("images_per_s")) if r else "")
        best = _best(rows, "jax")
        cells += [
            _ratio(best, _best(rows, "torch", ("eager", "eager_cl"))),
            _ratio(best, _best(rows, "torch", ("compile",))),
            _fmt(best and best.get("tflops"), 2),
            _fmt(best and best.get("peak_fraction") and 100 * best["peak_fraction"], 1),
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
        lines += [
            "",
            "End to end (one seed; data, training, validation each epoch, test):",
            "",
            "| run | framework | epochs | batch | wall s | compile s | steady s | test acc |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in results["end_to_end"]:
            lines.append(
                f"| {r['run']} | {r['framework']} | {r['epochs']} | {r['batch_size']} | "
                f"{r['wall_s']:.1f} | {r['compile_s']:.1f} | {r['steady_s']:.1f} | "
                f"{100 * r['test_accuracy']:.2f} % |"
            )
    return "\n".join(lines) + "\n"
