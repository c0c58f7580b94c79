"""The absl commands as installed scripts (pyproject's [project.scripts])."""

import sys

from absl import app, flags


def run(main, modules: tuple[str, ...], **kwargs):
    """app.run(main, **kwargs), with --help as `python -m modules[0]` prints it.

    absl's --help prints the main module's docstring and lists its flags; for an installed
    script the main module is the launcher pip wrote, with neither.
    """
    launcher = sys.modules["__main__"]
    if launcher.__doc__ is None:
        launcher.__doc__ = sys.modules[modules[0]].__doc__
    for name in modules:
        for flag in flags.FLAGS.get_key_flags_for_module(name):
            flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    app.run(main, **kwargs)
