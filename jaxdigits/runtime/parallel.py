"""Data parallelism over every device of every process (config.parallel = "data").

One process per host (or per GPU) runs the same program: `jax.distributed`
connects them, a 1-D mesh spans all their devices, the dataset and the
per-seed state are replicated, and each batch is sharded along its first
axis, so that XLA inserts the gradient all-reduce (GSPMD). The step is the
same pure function as on one device; only the shardings differ. Each
process reads the same data files; process 0 writes the run's files (orbax
writes its checkpoints from every process).
"""

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

PARALLEL = ("none", "data")
AXIS = "data"


def initialize(coordinator_address: str = "", num_processes: int = 0, process_id: int = -1):
    """Joins the processes of a multi-process run before anything else touches JAX.

    With an address, all three are given (one command per process); with
    none, JAX detects them from SLURM or Open MPI. A peer that never comes
    makes every process stop after 5 minutes (JAX's initialization timeout).
    """
    if coordinator_address:
        if num_processes < 1 or not 0 <= process_id < num_processes:
            raise ValueError(
                f"--num_processes={num_processes} and --process_id={process_id}: need "
                "num_processes >= 1 and 0 <= process_id < num_processes"
            )
        jax.distributed.initialize(coordinator_address, num_processes, process_id)
    else:
        jax.distributed.initialize()


def mesh(config) -> jax.sharding.Mesh | None:
    """The data-parallel mesh over all devices of all processes; None unless parallel is "data".

    Auto axes: sharding propagation places the collectives, and a sharding
    constraint on the batch is all the step needs.
    """
    if config.get("parallel", "none") == "none":
        return None
    n = jax.device_count()
    if config.batch_size % n:
        raise ValueError(
            f"config.batch_size={config.batch_size} does not split over {n} devices "
            f"({jax.process_count()} processes): use a multiple of {n}"
        )
    return jax.make_mesh((n,), (AXIS,), axis_types=(jax.sharding.AxisType.Auto,))


def batch_sharding(mesh) -> NamedSharding | None:
    return None if mesh is None else NamedSharding(mesh, P(AXIS))


def replicate(tree, mesh):
    """Host or single-device arrays -> arrays replicated on every device of the mesh.

    Every process passes the same values (the same files, seeds and code);
    no data crosses processes.
    """
    if mesh is None:
        return jax.tree.map(jax.numpy.asarray, tree)
    sharding = NamedSharding(mesh, P())

    def put(x):
        x = np.asarray(x)
        return jax.make_array_from_process_local_data(sharding, x, x.shape)

    return jax.tree.map(put, tree)


def is_writer() -> bool:
    """Whether this process writes the run's files: process 0."""
    return jax.process_index() == 0


def barrier(name: str):
    """Every process waits here for the others (no-op with one process)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)
