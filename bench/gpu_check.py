"""The Python steps of bench/gpu_check.sh.

    python bench/gpu_check.py env OUT/environment.json [--dry-run]
    python bench/gpu_check.py smoke OUT/smoke.json [--toy]

`env` records the device and the versions of both frameworks and their cuDNN, and exits 1
unless JAX runs on a GPU (with --dry-run: on the CPU), so that a silent CPU fallback never
writes a "GPU" file. `smoke` trains the digit-sum regressor's smoke config twice, the seeds
vmapped and looped, and exits 1 unless each seed's params and test accuracy agree (--toy:
on 40 of its canvases, two steps of 16, for the dry run).
"""

import contextlib
import io
import json
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PACKAGES = (
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "orbax-checkpoint",
    "ml_collections",
    "numpy",
    "torch",
    "torchvision",
    "pytorch-lightning",
)


def _jax_cudnn():
    try:  # a private module: absent on CPU-only jaxlib, and it may move
        from jax._src.lib import cuda_versions

        return cuda_versions.cudnn_get_version() if cuda_versions else None
    except Exception:
        return None


def environment(dry_run: bool) -> dict:
    import jax
    import torch

    from jaxdigits import output

    dev = jax.devices()[0]
    return {
        "dry_run": dry_run,
        "jax_backend": jax.default_backend(),
        "jax_devices": [d.device_kind for d in jax.devices()],
        "device": output.device_name(),
        "jax_platform_version": getattr(dev.client, "platform_version", None),
        "jax_cudnn": _jax_cudnn(),
        "torch_cuda": torch.version.cuda,
        "torch_device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "torch_cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
        "python": sys.version.split()[0],
        "versions": output.package_versions(PACKAGES),
    }


def env(path: str, dry_run: bool) -> int:
    info = environment(dry_run)
    pathlib.Path(path).write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info, indent=2))
    want = "cpu" if dry_run else "gpu"
    if info["jax_backend"] != want:
        print(f"error: JAX runs on {info['jax_backend']!r}, not {want!r}: no results are written")
        return 1
    if not dry_run and info["torch_device"] == "cpu":
        print("error: torch sees no CUDA device: its rows would be CPU rows")
        return 1
    return 0


def smoke(path: str, toy: bool = False) -> int:
    import jax
    import numpy as np

    from jaxdigits import defaults, saved_params, trainer
    from jaxdigits.runtime import compile_cache

    compile_cache.setup()  # the folder gpu_check.sh names, as for its other steps
    out, params = {}, {}
    for axis in ("vmap", "loop"):
        cfg = defaults.from_file(ROOT / "configs" / "digitsum_regressor.py", "smoke")
        cfg.seed_axis = axis
        if toy:  # 32 train canvases: two steps of 16 in one call; 16 test canvases
            cfg.data.limit, cfg.data.test_limit, cfg.steps_per_call = 40, 16, -1
            cfg.batch_size = cfg.eval_batch_size = 16
        with tempfile.TemporaryDirectory() as workdir:
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                summary = trainer.train_and_evaluate(cfg, workdir)
            out[axis] = {"wall_s": time.perf_counter() - t0, "summary": summary}
            params[axis] = saved_params.restore_latest(workdir)["train"]["params"]
    diffs = [
        float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) or 1.0))
        for a, b in zip(
            jax.tree.leaves(params["vmap"]), jax.tree.leaves(params["loop"]), strict=True
        )
    ]
    acc = {axis: [s["test_accuracy"] for s in o["summary"]["per_seed"]] for axis, o in out.items()}
    out["max_relative_param_difference"] = max(diffs)
    out["test_accuracy"] = acc
    ok = max(diffs) < 1e-3 and np.allclose(acc["vmap"], acc["loop"], atol=0.01)
    out["agree"] = bool(ok)
    pathlib.Path(path).write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(f"seeds vmapped vs looped: max relative param difference {max(diffs):.2e}; test {acc}")
    if not ok:
        print("error: the seeds vmapped and looped do not train alike")
        return 1
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2 or argv[0] not in ("env", "smoke"):
        print(__doc__)
        return 2
    if argv[0] == "env":
        return env(argv[1], "--dry-run" in argv[2:])
    return smoke(argv[1], "--toy" in argv[2:])


if __name__ == "__main__":
    sys.exit(main())
