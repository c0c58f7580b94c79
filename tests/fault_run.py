"""`python tests/fault_run.py TRAIN_ARGS...`: jaxdigits.train with one fault from $JAXDIGITS_FAULT.

The process really dies (SIGKILL, which it cannot catch) or really gets
the signal; the hooks only choose the moment, so that a test can name it:

  kill-after-call:N             SIGKILL after the N-th jitted training call
  kill-before-save:DIR:STEP     SIGKILL before DIR/STEP is saved (DIR: checkpoints, best,
                                partial); for checkpoints after an improved epoch, that is
                                between the best params and the state
  kill-before-commit:DIR:STEP   SIGKILL inside orbax's save of DIR/STEP: its files are
                                written to a temporary directory, not yet renamed
  kill-before-manifest:DIR:STEP SIGKILL after orbax committed DIR/STEP, before its manifest
  signal-after-call:SIG:N       send SIG (TERM or INT) to itself after the N-th call
"""

import os
import pathlib
import runpy
import signal
import sys

from orbax.checkpoint._src.path import atomicity

from jaxdigits import checkpoint, epochs


def _die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _after_calls(n: int, action):
    make = epochs.make_epoch_calls
    count = [0]

    def make_epoch_calls(*args, **kwargs):
        calls = make(*args, **kwargs)

        def counted(*a, **k):
            for item in calls(*a, **k):
                count[0] += 1
                if count[0] == n:
                    action()
                yield item

        return counted

    epochs.make_epoch_calls = make_epoch_calls


def _step_dir_is(path, where: str) -> bool:
    name, step = where.rsplit(":", 1)
    path = pathlib.Path(str(path))
    return path.parent.name == name and path.name == step


def install(fault: str):
    kind, _, where = fault.partition(":")
    if kind == "kill-after-call":
        _after_calls(int(where), _die)
    elif kind == "signal-after-call":
        sig, n = where.split(":")
        _after_calls(int(n), lambda: os.kill(os.getpid(), getattr(signal, f"SIG{sig}")))
    elif kind == "kill-before-save":
        save = checkpoint.RunCheckpoints._save

        def _save(self, mgr, step, tree):
            if _step_dir_is(pathlib.Path(mgr.directory) / str(step), where):
                _die()
            return save(self, mgr, step, tree)

        checkpoint.RunCheckpoints._save = _save
    elif kind == "kill-before-commit":
        finalize = atomicity.AtomicRenameTemporaryPath.finalize

        async def before_rename(self):
            if _step_dir_is(self._final_path, where):
                _die()
            return await finalize(self)

        atomicity.AtomicRenameTemporaryPath.finalize = before_rename
    elif kind == "kill-before-manifest":
        write = checkpoint.write_manifest

        def write_manifest(step_dir):
            if _step_dir_is(step_dir, where):
                _die()
            return write(step_dir)

        checkpoint.write_manifest = write_manifest
    else:
        raise SystemExit(f"unknown JAXDIGITS_FAULT {fault!r}")


if __name__ == "__main__":
    if os.environ.get("JAXDIGITS_FAULT"):
        install(os.environ["JAXDIGITS_FAULT"])
    sys.argv = ["jaxdigits.train", *sys.argv[1:]]
    runpy.run_module("jaxdigits.train", run_name="__main__", alter_sys=True)
