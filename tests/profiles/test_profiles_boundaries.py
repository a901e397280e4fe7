"""profiles is plain data: no optimizer, passes, onnx, onnxruntime, and matplotlib only lazily."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "profiles"
FORBIDDEN = {"optimizer", "passes", "onnx", "onnxruntime", "onnx_ir", "onnxscript", "torch"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_no_forbidden_imports_in_sources():
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 10
    for source in sources:
        allowed = {"matplotlib"} if source.name == "html_report.py" else set()
        third_party = imported_modules(source) - set(sys.stdlib_module_names)
        assert third_party <= {"numpy"} | allowed, source


def test_import_pulls_in_nothing_heavy():
    code = (
        "import sys, profiles, profiles.html_report; "
        f"bad = sorted(set({sorted(FORBIDDEN | {'matplotlib'})!r}) & {{m.split('.')[0] for m in sys.modules}}); "
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=PACKAGE.parent, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
