"""Train a config:  python -m jaxdigits.train --config configs/part3.py --workdir ckpts/part3

Any config value can be overridden, e.g. --config.seeds='(0, 10, 42)' or
--config.data.path=mnistTask3.zip. Re-running the same command resumes.
SIGTERM or Ctrl-C saves a checkpoint and exits with status 128 + the signal's number.
Compiled programs are cached on disk (jaxdigits/runtime/compile_cache.py):
--compilation_cache=DIR moves the cache, --compilation_cache=off turns it off.
Data parallel over several processes (docs/troubleshooting.md, "Several GPUs or hosts"): add
--config.parallel=data and, per process, --coordinator_address=HOST:PORT
--num_processes=N --process_id=I (or --distributed under SLURM).
"""

import shlex
import sys

from absl import flags, logging
from ml_collections import config_flags

from jaxdigits import trainer
from jaxdigits.data import DataError
from jaxdigits.runtime import cli as cli_app
from jaxdigits.runtime import compile_cache, interrupt, parallel

config_flags.DEFINE_config_file("config", None, "Experiment config file (FILE.py[:ARG]).")
flags.DEFINE_string("workdir", None, "Run directory for checkpoints, metrics and figures.")
flags.DEFINE_string(
    "coordinator_address", "", "Multi-process runs: HOST:PORT of process 0, the same for all."
)
flags.DEFINE_integer("num_processes", 0, "Multi-process runs: how many processes in all.")
flags.DEFINE_integer("process_id", -1, "Multi-process runs: this process's number, 0..N-1.")
flags.DEFINE_bool(
    "distributed", False, "Join a multi-process run whose processes JAX finds (SLURM, Open MPI)."
)
compile_cache.define_flag()
flags.mark_flags_as_required(["config", "workdir"])


def parse_flags(argv):
    """absl's flag parsing, with config errors (unknown key, bad value) as one line."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        sys.exit(f"error: {e}\nPass --helpshort to see the flags.")
    except AttributeError as e:  # ml_collections' message spans lines, with a suggestion
        cause = e.args[0] if e.args else e
        while isinstance(cause, KeyError) and cause.args:  # a KeyError's str is a repr
            cause = cause.args[0]
        message = " ".join(str(cause).split())
        sys.exit(f"error: unknown config key in a --config.KEY=VALUE override: {message}")
    except (KeyError, TypeError, ValueError) as e:
        sys.exit(f"error: bad --config or override: {e}")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    f = flags.FLAGS
    compile_cache.setup(f.compilation_cache)  # before anything compiles
    try:
        if f.coordinator_address or f.distributed:  # before anything else starts JAX's backend
            parallel.initialize(f.coordinator_address, f.num_processes, f.process_id)
        command = shlex.join(["python", "-m", "jaxdigits.train", *sys.argv[1:]])
        trainer.train_and_evaluate(flags.FLAGS.config, flags.FLAGS.workdir, command=command)
    except interrupt.Interrupted as e:
        print(e, file=sys.stderr)
        sys.exit(e.exit_status)
    except (DataError, FileNotFoundError, ImportError, ValueError) as e:
        sys.exit(f"error: {e}")


def cli():
    """The `jaxdigits-train` command."""
    cli_app.run(main, (__name__, compile_cache.__name__), flags_parser=parse_flags)


if __name__ == "__main__":
    cli()
