"""pyproject.toml: the commands on the PATH ([project.scripts]), one per `python -m` entry
point of the package, each the same program with the same flags; and constraints.txt, the
versions CI installs, pinning every dependency."""

import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _scripts() -> dict[str, str]:
    """pyproject.toml's [project.scripts] table (tomllib is Python 3.11+; we support 3.10)."""
    text = (ROOT / "pyproject.toml").read_text()
    table = re.search(r"^\[project\.scripts\][^\n]*\n(.*?)^\[", text, re.M | re.S).group(1)
    return dict(re.findall(r'^([\w-]+) = "([\w.:]+)"', table, re.M))


SCRIPTS = _scripts()


def _requirements(key: str) -> list[str]:
    """The requirements in pyproject's list `key = [...]` (dependencies, an extra)."""
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(rf"^{key} = \[(.*?)^\]", text, re.M | re.S).group(1)
    return re.findall(r'^\s*"([^"]+)"', block, re.M)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_constraints_pin_every_dependency():
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version.strip(), f"constraints.txt: {line!r} is not NAME==VERSION"
            pins[_canonical(name)] = version
    needed = [r for key in ("dependencies", "dev") for r in _requirements(key)]
    names = {_canonical(re.match(r"[\w.-]+", r).group(0)) for r in needed}
    assert {"jax", "pytest", "torch"} <= names  # the parsing found the lists
    assert names - set(pins) == set(), "pin them: pip freeze in CI's venv"
    for name, version in (r.split("==") for r in needed if "==" in r):
        assert pins[_canonical(name)] == version, name  # where pyproject pins, the same


def _modules_with_a_main() -> set[str]:
    """The package's `python -m` entry points: modules with a __main__ block, and packages
    with a __main__.py (named by the package)."""
    found = set()
    for path in (ROOT / "jaxdigits").rglob("*.py"):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        if path.name == "__main__.py":
            found.add(module.removesuffix(".__main__"))
        elif re.search(r'^if __name__ == "__main__":', path.read_text(), re.M):
            found.add(module)
    return found


def _python_m(target: str) -> str:
    """The `python -m` name of an entry point: jaxdigits.report.build:main is run as
    python -m jaxdigits.report (its package's __main__.py)."""
    module = target.split(":")[0]
    package = module.rsplit(".", 1)[0]
    main = ROOT / pathlib.Path(*package.split(".")) / "__main__.py"
    if main.exists() and module.rsplit(".", 1)[1] in main.read_text():
        return package
    return module


def test_every_python_m_entry_point_has_a_command():
    covered = {t.split(":")[0] for t in SCRIPTS.values()} | {_python_m(t) for t in SCRIPTS.values()}
    assert _modules_with_a_main() <= covered
    assert len(set(SCRIPTS.values())) == len(SCRIPTS)  # no program twice
    assert all(name.startswith("jaxdigits-") for name in SCRIPTS)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_each_command_runs_its_program(name):
    """The entry point, called as the installed script calls it, prints the same help as
    python -m, and exits as it does (absl's --help exits 1, argparse's 0)."""
    module, func = SCRIPTS[name].split(":")
    as_script = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys; sys.argv[0] = {name!r}; import {module}; {module}.{func}()",
            "--help",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    as_module = subprocess.run(
        [sys.executable, "-m", _python_m(SCRIPTS[name]), "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert as_script.returncode == as_module.returncode, as_script.stderr[-2000:]
    assert "Traceback" not in as_script.stderr + as_module.stderr
    flags = lambda text: set(re.findall(r"--[\w.]+", text))  # noqa: E731
    assert flags(as_script.stdout) == flags(as_module.stdout) != set()
