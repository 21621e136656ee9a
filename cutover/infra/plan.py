"""A plan: every resource a Pulumi program registers, as plain data. (No Pulumi imports.)

A plan is what a reviewer reads before anything is applied, and what ``diff``
and ``policy`` work on. Each resource has its Pulumi ``type`` token, its
logical ``name`` (unique in a plan), its ``inputs`` as the engine records them
(camelCase), its ``parent`` and ``dependencies`` (logical names), its
``provider`` and the resource ``options`` that were set (``protect``,
``ignoreChanges``, ``deleteBeforeReplace``, ``retainOnDelete``). The JSON form is stable: resources sorted by name, keys sorted,
so that two plans of the same program and inventory are byte-identical.

Under the mock runtime a resource's id is ``"<name>.id"``, so an input such as
``"networkId": "national-admin-net.id"`` reads as a reference; ``Plan.target``
resolves it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict

from cutover.errors import InputError, Problem, ValidationError

ID_SUFFIX = ".id"
DEFAULT_PROVIDER_PREFIX = "default"
PROVIDER_TYPE_PREFIX = "pulumi:providers:"


@dataclass(frozen=True)
class PlannedResource:
    type: str
    name: str
    inputs: Mapping[str, Any] = field(default_factory=dict)
    parent: str | None = None
    dependencies: tuple[str, ...] = ()
    provider: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_component(self) -> bool:
        """Custom resources always have a provider; ComponentResources never do."""
        return self.provider is None

    def to_json(self) -> dict[str, Any]:
        document = {
            "type": self.type, "name": self.name, "inputs": dict(self.inputs), "parent": self.parent,
            "dependencies": list(self.dependencies), "provider": self.provider,
        }
        if self.options:
            document["options"] = dict(self.options)
        return document


class DuplicateResourceName(InputError):
    """Two resources share a logical name: Pulumi would refuse them, and a diff could not tell them apart."""


@dataclass(frozen=True)
class Plan:
    resources: tuple[PlannedResource, ...]
    _index: Mapping[str, PlannedResource] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def of(cls, resources: Iterable[PlannedResource]) -> Plan:
        ordered = tuple(sorted(resources, key=lambda r: r.name))
        index: dict[str, PlannedResource] = {}
        for resource in ordered:
            if resource.name in index:
                other = index[resource.name]
                raise DuplicateResourceName(
                    f"two resources are named {resource.name!r} ({other.type} and {resource.type})",
                    hint="logical names must be unique in a plan; check the inventory for a repeated name",
                )
            index[resource.name] = resource
        return cls(ordered, index)

    def __iter__(self) -> Iterator[PlannedResource]:
        return iter(self.resources)

    def __len__(self) -> int:
        return len(self.resources)

    def get(self, name: str) -> PlannedResource | None:
        return self._index.get(name)

    def of_type(self, type_: str) -> list[PlannedResource]:
        return [r for r in self.resources if r.type == type_]

    def target(self, value: Any) -> PlannedResource | None:
        """The resource an input value refers to ("<name>.id"), if any."""
        if isinstance(value, str) and value.endswith(ID_SUFFIX):
            return self._index.get(value[: -len(ID_SUFFIX)])
        return None

    def ancestors(self, name: str) -> list[str]:
        chain, current = [], self._index.get(name)
        while current is not None and current.parent is not None:
            chain.append(current.parent)
            current = self._index.get(current.parent)
        return chain

    def within(self, component: str) -> list[PlannedResource]:
        """Every resource under ``component`` (children, grandchildren...)."""
        return [r for r in self.resources if component in self.ancestors(r.name)]

    def count_by_type(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for resource in self.resources:
            counts[resource.type] = counts.get(resource.type, 0) + 1
        return dict(sorted(counts.items()))

    def to_json(self) -> dict[str, Any]:
        return {"resources": [r.to_json() for r in self.resources]}

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------
# From the mock runtime's raw registrations


def plan_from_registrations(records: Iterable[Mapping[str, Any]]) -> Plan:
    """Raw registrations (URNs, as ``mockrun`` records them) -> a Plan of logical names."""
    records = list(records)
    names = {r["urn"]: r["name"] for r in records}
    resources = []
    for record in records:
        if record["type"].startswith(PROVIDER_TYPE_PREFIX) and record["name"].startswith(DEFAULT_PROVIDER_PREFIX):
            continue  # default providers are named after the plugin version: noise in every diff
        resources.append(PlannedResource(
            type=record["type"],
            name=record["name"],
            inputs=_names_for_urns(record["inputs"], names),
            parent=names.get(record["parent"]),
            dependencies=tuple(sorted({names[u] for u in record["dependencies"] if u in names})),
            provider=_provider_name(record["provider"], record["type"]) if record["custom"] else None,
            options=record.get("options") or {},
        ))
    return Plan.of(resources)


def _names_for_urns(value: Any, names: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"resource"}:
            return names.get(value["resource"], value["resource"])
        return {k: _names_for_urns(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_names_for_urns(v, names) for v in value]
    return value


def _provider_name(reference: str, type_: str) -> str:
    """'urn:pulumi:s::p::pulumi:providers:openstack::default_5_5_3::id' -> 'pulumi:providers:openstack::default'.

    The mock monitor registers no default provider, so an empty reference
    means the package's default one, as the engine would pick.
    """
    if not reference:
        return f"{PROVIDER_TYPE_PREFIX}{type_.split(':', 1)[0]}::{DEFAULT_PROVIDER_PREFIX}"
    parts = reference.split("::")
    if len(parts) < 4:
        return reference
    type_, name = parts[2].rsplit("$", 1)[-1], parts[3]  # a provider under a component: "parent$pulumi:providers:..."
    return f"{type_}::{DEFAULT_PROVIDER_PREFIX if name.startswith(DEFAULT_PROVIDER_PREFIX) else name}"


# --------------------------------------------------------------------------
# Plan files


class _ResourceModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str
    name: str
    inputs: dict[str, Any] = {}
    parent: str | None = None
    dependencies: list[str] = []
    provider: str | None = None
    options: dict[str, Any] = {}  # absent from plan files written before options were recorded


class _PlanModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resources: list[_ResourceModel]


def parse_plan(text: str, *, source: str) -> Plan:
    """A plan file's JSON -> Plan; anything malformed is a ValidationError naming the file."""
    try:
        model = _PlanModel.model_validate_json(text)
    except pydantic.ValidationError as exc:
        problems = [Problem(source, err["msg"], field=".".join(map(str, err["loc"])) or None,
                            hint="a plan file is what `cutover infra plan --out FILE` writes")
                    for err in exc.errors(include_url=False)]
        raise ValidationError(problems, what="plan file") from exc
    return Plan.of(PlannedResource(r.type, r.name, r.inputs, r.parent, tuple(r.dependencies), r.provider,
                                   r.options) for r in model.resources)


def load_plan(path: Path) -> Plan:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationError([Problem(str(path), f"cannot read plan file: {exc.strerror or exc}",
                                       hint="pass a file written by `cutover infra plan --out`, or git:REF")]) from exc
    return parse_plan(text, source=str(path))
