"""jax.jit with the XLA options that this project's programs need on the CPU backend.

XLA:CPU hands every convolution to YNNPACK, whose kernels are slower than
XLA's own (Eigen) convolution at the shapes of these networks, worst at the
weight gradient (figures in docs/speed.md). The option below takes
convolutions off YNNPACK and keeps its other fusions (reductions, matmuls),
which are fast. Other backends get no options.

A user's own XLA_FLAGS setting of the same option wins.

Programs that a run executes once (the initialisation) are compiled at LLVM's -O1 rather
than its default -O3 (`jit_once`): LLVM optimising the threefry of every initialiser was
most of their compile time, which their one run never pays back.
"""

import functools
import os
import warnings

import jax
import jax.numpy as jnp

YNN_OPTION = "xla_cpu_experimental_ynn_fusion_type"
# XLA's default YNNPACK fusions (of the jax version in docs/speed.md) less
# INDIVIDUAL_CONVOLUTION; the XLA_FLAGS spelling is
# --xla_cpu_experimental_ynn_fusion_type=-individual_convolution.
CPU_OPTIONS = {YNN_OPTION: "LIBRARY_FUSION_TYPE_REDUCE,LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}


@functools.cache
def compiler_options(backend: str) -> dict | None:
    """The options for programs compiled for `backend` (None: XLA's defaults)."""
    if backend != "cpu" or YNN_OPTION in os.environ.get("XLA_FLAGS", ""):
        return None
    try:  # an XLA that no longer knows the option rejects it at compile time
        one = jax.device_put(1.0, jax.local_devices(backend=backend)[0])
        jax.jit(jnp.sin, compiler_options=CPU_OPTIONS).lower(one).compile()
    except Exception as e:  # XLA raises several types for unknown options
        warnings.warn(
            f"XLA rejects {CPU_OPTIONS}, so convolutions stay on its default path ({e})",
            stacklevel=2,
        )
        return None
    return dict(CPU_OPTIONS)


# Measured in docs/speed.md: an init compiles 3-4x faster at -O1 and gives the same bits
# (tests/test_xla.py); at -O0 it does not. Train and eval steps stay at -O3, which runs them
# faster.
ONCE_OPTIONS = {"xla_backend_optimization_level": 1}


def jit(fn, **kwargs):
    """jax.jit(fn, **kwargs) with compiler_options for the default backend."""
    return jax.jit(fn, compiler_options=compiler_options(jax.default_backend()), **kwargs)


def jit_once(fn, **kwargs):
    """`jit` for a program run once per run: on the CPU backend also ONCE_OPTIONS."""
    backend = jax.default_backend()
    options = compiler_options(backend)
    if backend == "cpu":
        options = {**(options or {}), **ONCE_OPTIONS}
    return jax.jit(fn, compiler_options=options, **kwargs)
