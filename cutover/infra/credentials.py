"""Credential literals in the Pulumi program and the stack files (rule ``no-credential-literal``).

A plan only shows what reaches a resource; a password typed into a stack
file or a program is a leak even before it does (the file is in git). So the
source side of the rule reads the files themselves:

- stack files (``infra/Pulumi*.yaml``): a config value under a credential
  name (password, token, psk...) that is not ``secure:`` (``pulumi config set
  --secret`` writes those), at any depth;
- the program (``infra/**/*.py`` and the components): a keyword argument or a
  dict key with a credential name given a non-empty string literal.

Findings carry the file and line, for the console and for SARIF annotations.
(Plain data and ``ast``: no Pulumi.)
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cutover.errors import ValidationError
from cutover.infra.policy import is_credential_name
from cutover.model.yamlsource import YamlDocument, load_yaml

COMPONENTS_DIR = Path("cutover") / "infra" / "components"
PROGRAM_GLOBS = ("infra/*.py", "infra/**/*.py")
IGNORED_PARTS = {"policy-pack", "__pycache__", ".venv", "venv"}  # the pack names rules, not credentials


@dataclass(frozen=True)
class CredentialLiteral:
    file: str
    line: int
    name: str
    where: str  # "stack file" or "program"

    def message(self) -> str:
        if self.where == "stack file":
            return f"config {self.name} is stored in clear; set it with `pulumi config set --secret`"
        return f"{self.name}=... is a string literal in the program; read it from a secret config value"


def scan_project(project_dir: Path) -> list[CredentialLiteral]:
    """Every credential literal in the stack files and the program of ``project_dir``."""
    found: list[CredentialLiteral] = []
    for path in sorted((project_dir / "infra").glob("Pulumi*.yaml")):
        found += scan_stack_file(path, _display(path, project_dir))
    for path in _program_files(project_dir):
        found += scan_program(path.read_text(encoding="utf-8"), _display(path, project_dir))
    return found


def _program_files(project_dir: Path) -> list[Path]:
    files = {p for pattern in PROGRAM_GLOBS for p in project_dir.glob(pattern)}
    files |= set((project_dir / COMPONENTS_DIR).glob("*.py"))
    return sorted(p for p in files if p.is_file() and not IGNORED_PARTS & set(p.relative_to(project_dir).parts))


def scan_stack_file(path: Path, display: str) -> list[CredentialLiteral]:
    try:
        doc = load_yaml(path, display=display)
    except ValidationError:
        return []  # `infra plan` reports a broken stack file with its line; nothing to scan here
    config = doc.data.get("config") if isinstance(doc.data, dict) else None
    if not isinstance(config, dict):
        return []
    return list(_plain_credentials(doc, config, ("config",)))


def _plain_credentials(doc: YamlDocument, value: Any, loc: tuple[str | int, ...]) -> Iterator[CredentialLiteral]:
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return  # encrypted by Pulumi
        for key, item in value.items():
            here = (*loc, key)
            name = str(key).split(":", 1)[-1]
            if is_credential_name(name) and _is_literal(item):
                yield CredentialLiteral(doc.path, doc.line_of(here) or 1, ".".join(map(str, here[1:])), "stack file")
            elif isinstance(item, (dict, list)):
                yield from _plain_credentials_below(doc, item, here, name)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _plain_credentials(doc, item, (*loc, i))


def _plain_credentials_below(doc: YamlDocument, value: Any, loc: tuple[str | int, ...],
                             name: str) -> Iterator[CredentialLiteral]:
    """Under a credential-named key (vpnPresharedKeys: {"01": ...}) every literal leaf is a credential."""
    if not is_credential_name(name):
        yield from _plain_credentials(doc, value, loc)
        return
    items = value.items() if isinstance(value, dict) else enumerate(value)
    if isinstance(value, dict) and set(value) == {"secure"}:
        return
    for key, item in items:
        here = (*loc, key)
        if _is_literal(item):
            yield CredentialLiteral(doc.path, doc.line_of(here) or 1, ".".join(map(str, here[1:])), "stack file")
        elif isinstance(item, (dict, list)):
            yield from _plain_credentials_below(doc, item, here, name)


def _is_literal(value: Any) -> bool:
    return isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip() != ""


def scan_program(source: str, display: str) -> list[CredentialLiteral]:
    try:
        tree = ast.parse(source, filename=display)
    except SyntaxError:
        return []  # the evaluation reports it
    found = []
    for node in ast.walk(tree):
        for name, value in _named_values(node):
            if is_credential_name(name) and isinstance(value, ast.Constant) and isinstance(value.value, str) \
                    and value.value.strip():
                found.append(CredentialLiteral(display, value.lineno, name, "program"))
    return found


def _named_values(node: ast.AST) -> Iterator[tuple[str, ast.expr]]:
    if isinstance(node, ast.Call):
        yield from ((k.arg, k.value) for k in node.keywords if k.arg is not None)
    elif isinstance(node, ast.Dict):
        yield from ((k.value, v) for k, v in zip(node.keys, node.values)
                    if isinstance(k, ast.Constant) and isinstance(k.value, str))
    # Plain assignments are left out on purpose: `PSK_CONFIG_KEY = "vpnPresharedKeys"` names a
    # setting, it is not one. A credential reaches a resource or provider as an argument or a key.


def _display(path: Path, project_dir: Path) -> str:
    try:
        return str(path.relative_to(project_dir))
    except ValueError:
        return str(path)
