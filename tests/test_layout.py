"""The floor plan holds: mtl_core's packages import only downwards, nothing imports in a circle, task names
live only in the task definitions, and `python -m mtl_core` is the one entry to every command."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mtl_core.__main__ import COMMANDS

ROOT = Path(__file__).resolve().parent.parent
# A package may import its own modules and those of the packages below it (a lower number), never above.
LAYERS = {"settings": 0, "errors": 0, "model": 1, "tasks": 2, "data": 3, "training": 4, "serving": 4,
          "commands": 5, "bulk": 5, "__main__": 6}


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def imported_modules(path: Path) -> set[str]:
    """The mtl_core modules a file imports anywhere in it (function-level imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mtl_core"):
            found |= {f"{node.module}.{alias.name}" for alias in node.names} | {node.module}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("mtl_core")}
    return found


MODULES = {module_name(p): p for p in sorted((ROOT / "mtl_core").rglob("*.py"))}
GRAPH = {name: {m for m in imported_modules(path) if m in MODULES and m != name} for name, path in MODULES.items()}


def layer(module: str) -> str:
    return module.split(".")[1] if "." in module else "__init__"


def test_packages_import_only_downwards():
    upward = [f"{m} -> {d}" for m, deps in GRAPH.items() for d in deps
              if layer(m) in LAYERS and layer(d) in LAYERS and LAYERS[layer(d)] > LAYERS[layer(m)]]
    assert upward == []


def test_nothing_imports_in_a_circle():
    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(d == goal or (d not in seen and not seen.add(d) and reaches(d, goal, seen)) for d in GRAPH[start])

    assert [m for m in GRAPH if reaches(m, m, set())] == []


def test_the_import_graph_is_read():
    """The checks above are not vacuous: imports between packages are found."""
    assert any(d.startswith("mtl_core.model") for d in GRAPH["mtl_core.tasks.checkpoint"])


def test_task_names_are_written_only_in_the_task_definitions():
    files = [*(ROOT / "mtl_core").rglob("*.py"), *(ROOT / "ui").glob("*.py"), ROOT / "app.py"]
    quoted = [f"{f.relative_to(ROOT)}:{i}" for f in files if f.name != "definitions.py"
              for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1)
              if re.search(r"[\"'](intent|sentiment)[\"']", line)]
    assert quoted == []


def run_entry(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mtl_core", *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_the_entry_lists_every_command():
    result = run_entry("--help")
    assert result.returncode == 0
    assert all(f"  {name} " in result.stdout for name in COMMANDS)


def test_an_unknown_command_names_the_valid_ones():
    result = run_entry("predcit")
    assert result.returncode == 2 and "unknown command 'predcit'" in result.stderr and "predict" in result.stderr


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_has_help_under_the_entry(command):
    result = run_entry(command, "--help")
    assert result.returncode == 0 and result.stdout.startswith(f"usage: python -m mtl_core {command}")
