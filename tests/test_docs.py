"""The README and docs/ as a newcomer meets them: short, links that resolve, commands that
name real modules, scripts, configs, config keys and flags."""

import importlib.util
import pathlib
import re
import shlex

import pytest

from jaxdigits import defaults
from jaxdigits.runtime import validate

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "bench" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
COMMAND = re.compile(r"python3? (-m [\w.]+|bench/\w+\.py)([^\n`|]*)")


def test_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 150


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+://|#|mailto:", target):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        assert path.exists(), f"{page.relative_to(ROOT)}: link to {target} goes nowhere"


def _commands():
    for page in PAGES:
        for match in COMMAND.finditer(page.read_text()):
            yield page, match.group(1), match.group(2)


def _source(target: str) -> str:
    """The text that defines a command's flags: the module or script, and for a package
    the module its __main__ runs."""
    if target.startswith("-m "):
        name = target[3:]
        spec = importlib.util.find_spec(name)
        assert spec is not None, f"no module {name}"
        path = pathlib.Path(spec.origin)
        if path.name == "__init__.py":
            path = path.with_name("__main__.py")
            assert path.exists(), f"{name} is a package without __main__"
        text = path.read_text()
        for imported in re.findall(r"from ([\w.]+) import (\w+)", text):
            try:
                other = importlib.util.find_spec(".".join(imported))
            except ModuleNotFoundError:  # a name imported from a module, not a module
                continue
            if other is not None and other.origin and other.origin.endswith(".py"):
                text += pathlib.Path(other.origin).read_text()
        return text
    path = ROOT / target
    assert path.is_file(), f"no script {target}"
    return path.read_text()


SHARED_FLAGS = {"--helpfull", "--help"}
ABSL_FLAGS = {"--config", "--workdir"}  # the train CLI's, from ml_collections/absl


def test_commands_name_real_modules_scripts_and_flags():
    seen = 0
    for page, target, rest in _commands():
        source = _source(target)
        try:
            words = shlex.split(rest.split("#")[0])
        except ValueError:
            words = rest.split()
        for word in words:
            if not re.match(r"--[a-z]", word) or word in SHARED_FLAGS:
                continue
            flag = word.split("=")[0]
            if flag.startswith("--config."):
                continue  # config keys: test_config_overrides_name_real_keys
            name = flag[2:]
            known = (
                f'"{flag}"' in source
                or f'"{name}"' in source
                or f"'{name}'" in source
                or (flag in ABSL_FLAGS and "config_flags" in source)
            )
            assert known, f"{page.relative_to(ROOT)}: python {target} has no flag {flag}"
        seen += 1
    assert seen > 10


def test_config_files_and_overrides_name_real_configs_and_keys():
    known = set(validate.SCHEMA) | set(validate._plugin_keys())
    for page in PAGES:
        text = page.read_text()
        for name, arg in re.findall(r"configs/(\w+)\.py(?::([a-z,]+))?", text):
            path = ROOT / "configs" / f"{name}.py"
            assert path.is_file(), f"{page.relative_to(ROOT)}: no config {path.name}"
            validate.check(defaults.from_file(path, arg or None))
        for key in re.findall(r"--config\.([\w.]+)=", text):
            assert key in known, f"{page.relative_to(ROOT)}: --config.{key} is no config key"


def test_no_page_refers_to_internal_work_items():
    for page in PAGES:
        for word in ("issue", "session", "helper"):
            hits = re.findall(rf"\b{word}s?\b", page.read_text(), re.IGNORECASE)
            assert not hits, f"{page.relative_to(ROOT)} speaks of {word}s"
