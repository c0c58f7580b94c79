"""Train a config:  python -m jaxdigits.train --config configs/part3.py --workdir ckpts/part3

Any config value can be overridden, e.g. --config.seeds='(0, 10, 42)' or
--config.data.path=mnistTask3.zip. Re-running the same command resumes.
SIGTERM or Ctrl-C saves a checkpoint and exits with status 128 + the signal's number.
"""

import shlex
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from jaxdigits import interrupt, trainer
from jaxdigits.data import DataError

config_flags.DEFINE_config_file("config", None, "Experiment config file (FILE.py[:ARG]).")
flags.DEFINE_string("workdir", None, "Run directory for checkpoints, metrics and figures.")
flags.mark_flags_as_required(["config", "workdir"])


def parse_flags(argv):
    """absl's flag parsing, with config errors (unknown key, bad value) as one line."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        sys.exit(f"error: {e}\nPass --helpshort to see the flags.")
    except AttributeError as e:
        sys.exit(f"error: unknown config key {e} in a --config.KEY=VALUE override")
    except (KeyError, TypeError, ValueError) as e:
        sys.exit(f"error: bad --config or override: {e}")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    try:
        command = shlex.join(["python", "-m", "jaxdigits.train", *sys.argv[1:]])
        trainer.train_and_evaluate(flags.FLAGS.config, flags.FLAGS.workdir, command=command)
    except interrupt.Interrupted as e:
        print(e, file=sys.stderr)
        sys.exit(e.exit_status)
    except (DataError, FileNotFoundError, ImportError, ValueError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
