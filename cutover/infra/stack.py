"""The Pulumi project and stack files under ``infra/``, validated before anything runs.

``infra/Pulumi.yaml`` names the project; ``infra/Pulumi.<stack>.yaml`` holds a
stack's config. We check what we own (the ``cutover-samu:`` keys), that the
inventory the stack names exists, and that ``openstack:region`` agrees with
the inventory's region; a mistake is reported with file and line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cutover.errors import NotFound, Problem, ValidationError
from cutover.model.yamlsource import YamlDocument, load_yaml

INFRA_DIR = "infra"
PROJECT_FILE = "Pulumi.yaml"
# Two programs, two owners: the customer stack (infra/) and what needs cloud-admin rights (infra/provider/).
CUSTOMER, PROVIDER = "customer", "provider"
SIDES = {CUSTOMER: ".", PROVIDER: "provider"}
NAMESPACE = "cutover-samu"
OUR_KEYS = {"inventory": str, "vpnPresharedKeys": dict, "policyDigest": str}
# The digest of infra/policy.yaml the stack is pinned to: `infra preview|up` refuse another policy.
POLICY_DIGEST_KEY = f"{NAMESPACE}:policyDigest"
STACK_TOP_KEYS = {"config", "secretsprovider", "encryptionsalt", "encryptedkey", "environment"}


@dataclass(frozen=True)
class StackConfig:
    """One stack: its name, the inventory it builds, and its plain (non-secret) config values."""

    project: str
    stack: str
    inventory: str
    program_dir: Path
    values: dict[str, str]
    region: str | None
    source: str
    side: str = CUSTOMER
    secrets_provider: str | None = None

    def mock_config(self, extra: dict[str, str]) -> dict[str, str]:
        return {**self.values, **extra}


def program_dir(project_dir: Path, side: str = CUSTOMER) -> Path:
    return project_dir / INFRA_DIR if side == CUSTOMER else project_dir / INFRA_DIR / SIDES[side]


def load_stack(project_dir: Path, stack: str, side: str = CUSTOMER) -> StackConfig:
    infra = program_dir(project_dir, side)
    project = _project_name(infra)
    path = infra / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        stacks = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in infra.glob("Pulumi.*.yaml"))
        raise NotFound(f"no stack {stack!r}: {path} does not exist",
                       hint=f"stacks: {', '.join(stacks) or '(none)'}; the stack is named after the environment")
    doc = load_yaml(path, display=_display(path))
    config = _config_section(doc)
    values, problems = _values(doc, config)
    if problems:
        raise ValidationError(problems, what=f"stack file {doc.path}")
    inventory = values.get(f"{NAMESPACE}:inventory", stack)
    secrets = doc.data.get("secretsprovider") if isinstance(doc.data, dict) else None
    return StackConfig(project, stack, inventory, infra, values, values.get("openstack:region"), doc.path, side,
                       str(secrets) if secrets is not None else None)


def project_backend(project_dir: Path, side: str = CUSTOMER) -> tuple[str | None, str, int | None]:
    """The project file's ``backend.url`` (None when not declared), the file, and the line."""
    path = program_dir(project_dir, side) / PROJECT_FILE
    doc = load_yaml(path, display=_display(path))
    backend = doc.data.get("backend") if isinstance(doc.data, dict) else None
    url = backend.get("url") if isinstance(backend, dict) else None
    return (str(url) if url else None), doc.path, doc.line_of(("backend", "url")) or doc.line_of(("name",)) or 1


def _project_name(infra: Path) -> str:
    path = infra / PROJECT_FILE
    if not path.is_file():
        raise NotFound(f"no Pulumi project: {path} does not exist",
                       hint="run from the project folder (it has infra/Pulumi.yaml) or pass --project-dir")
    doc = load_yaml(path, display=_display(path))
    name = doc.data.get("name") if isinstance(doc.data, dict) else None
    if not isinstance(name, str) or not name:
        raise ValidationError([Problem(doc.path, "the project has no name", line=1, field="name",
                                       hint="add `name: cutover-samu`")], what="Pulumi project file")
    return name


def _config_section(doc: YamlDocument) -> dict[str, Any]:
    data = doc.data if doc.data is not None else {}
    problems = []
    if not isinstance(data, dict):
        raise ValidationError([Problem(doc.path, "a stack file must be a mapping", line=1)], what="stack file")
    for key in data:
        if key not in STACK_TOP_KEYS:
            problems.append(Problem(doc.path, "unknown key", line=doc.line_of((key,)), field=str(key),
                                    hint=f"a stack file has {', '.join(sorted(STACK_TOP_KEYS))}"))
    config = data.get("config") or {}
    if not isinstance(config, dict):
        problems.append(Problem(doc.path, "config must be a mapping", line=doc.line_of(("config",)), field="config"))
    if problems:
        raise ValidationError(problems, what=f"stack file {doc.path}")
    return config


def _values(doc: YamlDocument, config: dict[str, Any]) -> tuple[dict[str, str], list[Problem]]:
    values: dict[str, str] = {}
    problems: list[Problem] = []
    for key, value in config.items():
        where: dict[str, Any] = {"line": doc.line_of(("config", key)), "field": f"config.{key}"}
        if ":" not in str(key):
            problems.append(Problem(doc.path, "config keys are namespaced, e.g. cutover-samu:inventory", **where))
            continue
        namespace, name = str(key).split(":", 1)
        if namespace == NAMESPACE and name not in OUR_KEYS:
            problems.append(Problem(doc.path, f"unknown setting {name!r}", **where,
                                    hint=f"{NAMESPACE} settings: {', '.join(sorted(OUR_KEYS))}"))
        elif namespace == NAMESPACE and not isinstance(value, OUR_KEYS[name]) and not _is_secure(value):
            problems.append(Problem(doc.path, f"must be a {OUR_KEYS[name].__name__}", **where))
        elif not _is_secure(value) and not isinstance(value, dict):
            values[str(key)] = str(value)  # secrets never reach an offline plan
    return values, problems


def _is_secure(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"secure"}


def check_region(stack: StackConfig, inventory_region: str) -> None:
    if stack.region is not None and stack.region != inventory_region:
        raise ValidationError([Problem(
            stack.source, f"openstack:region is {stack.region!r} but the inventory's region is {inventory_region!r}",
            field="config.openstack:region", hint="make them agree: the inventory is the source of truth",
        )], what=f"stack {stack.stack!r}")


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
