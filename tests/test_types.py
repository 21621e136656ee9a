"""Types, checked in `make test`: mypy finds no error in the package, and --strict none in the pure core."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def mypy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mypy", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


def test_the_package_type_checks():
    result = mypy("cutover")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_pure_core_type_checks_strictly():
    # follow-imports=silent: strictness applies to cutover/core itself; what it imports is checked above
    result = mypy("--strict", "--follow-imports=silent", "cutover/core")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues found" in result.stdout


FORBIDDEN_IN_CORE = ("pydantic", "yaml", "os", "socket", "subprocess", "sqlite3", "paramiko", "ansible_runner",
                     "click", "rich", "pulumi", "cutover.model", "cutover.planning", "cutover.app", "cutover.journal",
                     "cutover.executors", "cutover.cli", "cutover.web", "cutover.lab", "cutover.infra")


def test_the_core_imports_neither_boundary_models_nor_adapters_nor_os_probes():
    import ast

    found = []
    for path in sorted((ROOT / "cutover" / "core").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found += [f"{path.name}: {n}" for n in names
                      if any(n == f or n.startswith(f + ".") for f in FORBIDDEN_IN_CORE)]
    assert not found, found
