"""``onnx-opt new-pass``: write a working pass, its test and its docs, as a plugin package or
into a checkout of onnx-opt. The templates are in ``optimizer/data/scaffold``; the pass they
write is a real rewrite (a Transpose -> Transpose fold) for the author to make their own."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from optimizer.errors import UserError
from optimizer.registry import PASS_NAME, all_passes
from profiles.atomic import place_folder, staging_folder, write_text_atomic

STYLES = ("node", "rule")
OWN_PACKAGES = ("optimizer", "passes", "profiles")  # first-party in a checkout of onnx-opt
# The imports of each template, laid out by :func:`_render` for the package they are written into.
IMPORTS = {
    "pass_node.py.tmpl": (
        "import onnx_ir as ir",
        "from optimizer.passapi import Change, NodePass, Skip, node_label, register_pass, replace_nodes, sole_consumer",
    ),
    "pass_rule.py.tmpl": (
        "from optimizer.passapi import register_pass",
        "from optimizer.rules import MatchResult, RulePass",
    ),
    "test_pass.py.tmpl": (
        "import pytest",
        "from optimizer.testing import ANY, check_pass, pattern_model",
        "from {module} import {cls}",
    ),
}
ENTRY_POINTS = re.compile(r"^onnx_opt\.passes =\n((?:[ \t]+\S.*\n)*)", re.M)


@dataclass
class Scaffold:
    """The files to write (path -> text), where they go, and what to run next."""

    root: Path
    files: dict[Path, str]
    next_steps: list[str]
    plugin: bool


def plan_scaffold(name: str, style: str, plugin: Path | None, cwd: Path) -> Scaffold:
    """The files ``new-pass`` writes for pass ``name``; bad input is a :class:`UserError`."""
    if not PASS_NAME.match(name):
        raise UserError(f"new-pass: '{name}' is not a kebab-case pass name (e.g. 'fold-double-transpose')")
    known = all_passes().get(name)
    if known is not None:
        raise UserError(f"new-pass: pass '{name}' already exists ({known.__module__})")
    stem = name.replace("-", "_")
    words = {
        "name": name,
        "cls": "".join(part.capitalize() for part in name.split("-")),
        "stem": stem,
        "summary": "Fold Transpose -> Transpose into one Transpose (an Identity when the perms cancel)",
    }
    if plugin is not None:
        return _plugin(plugin, words, style)
    checkout = find_checkout(cwd)
    if checkout is None:
        raise UserError("new-pass: not inside a checkout of onnx-opt: give --plugin DIR to write a plugin package")
    return _in_checkout(checkout, words, style)


def write_scaffold(scaffold: Scaffold) -> None:
    """Write every file: a plugin folder appears whole (staged, then renamed into place); in a
    checkout each file is written atomically and the entry point is added to ``setup.cfg``."""
    if scaffold.plugin:
        scaffold.root.parent.mkdir(parents=True, exist_ok=True)
        with staging_folder(scaffold.root.parent, ".onnx-opt-new-pass-") as stage:
            staged = stage / "plugin"
            for path, text in scaffold.files.items():
                target = staged / path.relative_to(scaffold.root)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
            place_folder(staged, scaffold.root)
        return
    for path, text in scaffold.files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, text)


def find_checkout(start: Path) -> Path | None:
    """The onnx-opt checkout holding ``start`` (a setup.cfg naming onnx-opt beside ``passes/``)."""
    for folder in (start.resolve(), *start.resolve().parents):
        config = folder / "setup.cfg"
        own = (folder / "passes" / "__init__.py").is_file() and config.is_file()
        if own and re.search(r"^name = onnx-opt$", config.read_text(), re.M):
            return folder
    return None


def _plugin(root: Path, words: dict[str, str], style: str) -> Scaffold:
    root = root.resolve()
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise UserError(f"new-pass: --plugin {root} exists and is not an empty folder")
    package = f"onnx_opt_{words['stem']}"
    module = f"{package}.{words['stem']}"
    words = dict(
        words, package=package, module=module, distribution=f"onnx-opt-{words['name']}",
        folder=str(root),
    )

    def render(template: str) -> str:
        return _render(template, words, (package,))

    readme = render("README.md.tmpl") + "\n" + render("docs.md.tmpl").split("\n", 2)[2]
    files = {
        root / "pyproject.toml": render("pyproject.toml.tmpl"),
        root / "README.md": readme,
        root / package / "__init__.py": render("package_init.py.tmpl"),
        root / package / f"{words['stem']}.py": render(f"pass_{style}.py.tmpl"),
        root / "tests" / f"test_{words['stem']}.py": render("test_pass.py.tmpl"),
    }
    steps = [
        f"{sys.executable} -m pip install --no-build-isolation -e {root}",
        "onnx-opt passes",
        f"{sys.executable} -m pytest {root / 'tests'}",
    ]
    return Scaffold(root, files, steps, plugin=True)


def _in_checkout(root: Path, words: dict[str, str], style: str) -> Scaffold:
    module = f"passes.{words['stem']}"
    words = dict(words, module=module)
    test = root / "tests" / "passes" / f"test_{words['stem']}.py"
    files = {
        root / "passes" / f"{words['stem']}.py": _render(f"pass_{style}.py.tmpl", words, OWN_PACKAGES),
        test: _render("test_pass.py.tmpl", words, OWN_PACKAGES),
        root / "docs" / "passes" / f"{words['name']}.md": _render("docs.md.tmpl", words, OWN_PACKAGES),
    }
    existing = [str(path.relative_to(root)) for path in files if path.exists()]
    if existing:
        raise UserError(f"new-pass: {', '.join(existing)} exists already; nothing written")
    config = root / "setup.cfg"
    files[config] = _add_entry_point(config.read_text(), words["name"], words["module"])
    steps = [
        f"{root / 'bin' / 'setup'} --test  (re-installs onnx-opt: registers the new entry point)",
        "onnx-opt passes",
        f"{sys.executable} -m pytest {test}",
    ]
    return Scaffold(root, files, steps, plugin=False)


def _add_entry_point(config: str, name: str, module: str) -> str:
    """``setup.cfg`` with ``name = module`` appended to its ``onnx_opt.passes`` entry points."""
    match = ENTRY_POINTS.search(config)
    if match is None:
        raise UserError("new-pass: setup.cfg has no 'onnx_opt.passes =' entry-point list to add the pass to")
    indent = re.match(r"[ \t]+", match.group(1)).group(0) if match.group(1) else "    "
    return config[: match.end()] + f"{indent}{name} = {module}\n" + config[match.end():]


def _render(template: str, words: dict[str, str], first_party: tuple[str, ...]) -> str:
    """The template with ``words`` filled in, and its import block laid out as isort (ruff) would
    lay it out where ``first_party`` are the project's own packages."""
    imports = [line.format(**words) for line in IMPORTS.get(template, ())]
    order = sorted(imports, key=lambda line: (line.startswith("from"), line.split()[1]))
    sections = [
        [line for line in order if (line.split()[1].split(".")[0] in first_party) == own] for own in (False, True)
    ]
    block = "\n\n".join("\n".join(section) for section in sections if section)
    text = (resources.files("optimizer") / "data" / "scaffold" / template).read_text()
    return Template(text).substitute(words, imports=block)
