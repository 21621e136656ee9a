"""Is this inventory complete enough to build infrastructure from? (Plain data, no Pulumi.)

The inventory model accepts a lab that has only a region and its zones; the
infrastructure program needs more. ``require_infrastructure`` says what is
missing or inconsistent, naming the file and line, before anything is evaluated.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from pathlib import Path

from cutover.errors import Problem, ValidationError
from cutover.model.inventory import Inventory, Samu
from cutover.model.national import NationalCore
from cutover.model.yamlsource import YamlDocument, load_yaml

GROUP_VARS_ALL = ("group_vars/all.yml", "group_vars/all.yaml")


def require_infrastructure(inventory: Inventory) -> NationalCore:
    """The national core, once every infrastructure-level rule holds; else a ValidationError."""
    problems = infrastructure_problems(inventory)
    if problems:
        raise ValidationError(problems, what=f"inventory {inventory.name!r} for the infrastructure")
    assert inventory.national is not None  # infrastructure_problems() reports its absence
    return inventory.national


def infrastructure_problems(inventory: Inventory) -> list[Problem]:
    all_doc = _group_vars_all(inventory.path)
    national = inventory.national
    if national is None:
        return [_at(all_doc, ("cutover_national",), "no cutover_national: the national core is not described",
                    "add cutover_national (region, availability_zones, networks, bastion, storage...)")]
    problems = [
        _at(all_doc, ("cutover_national",), f"cutover_national.{name} is required to build infrastructure",
            "see docs/infra.md for an example")
        for name in national.missing_for_infrastructure()
    ]
    pool = inventory.settings.cutover_tenant_pool
    if pool is None:
        problems.append(_at(all_doc, ("cutover_tenant_pool",), "no cutover_tenant_pool: tenants' CIDRs come from it",
                            "add cutover_tenant_pool, e.g. 10.140.0.0/16"))
    else:
        problems += _pool_problems(inventory, all_doc, pool, national)
    return problems


def _pool_problems(inventory: Inventory, all_doc: YamlDocument | None, pool: ipaddress.IPv4Network,
                   national: NationalCore) -> list[Problem]:
    problems = []
    if national.networks is not None:
        for zone, cidr in national.networks.by_zone().items():
            if cidr.overlaps(pool):
                problems.append(_at(all_doc, ("cutover_tenant_pool",),
                                    f"cutover_tenant_pool {pool} overlaps cutover_national.networks.{zone} {cidr}",
                                    "tenant networks and national networks must be disjoint"))
    for samu in inventory.samus.values():
        if not samu.cidr.subnet_of(pool):
            problems.append(_samu_problem(inventory, samu, f"samu_cidr {samu.cidr} is outside cutover_tenant_pool {pool}",
                                          "`cutover tenant add` allocates a CIDR from the pool"))
    return problems


def _samu_problem(inventory: Inventory, samu: Samu, message: str, hint: str) -> Problem:
    file = inventory.path / "host_vars" / f"{samu.host}.yml"
    doc = _try_load(file)
    line = doc.line_of(("samu_cidr",)) if doc else None
    return Problem(_display(file), message, line=line, field=f"{samu.host}.samu_cidr", hint=hint)


def _group_vars_all(path: Path) -> YamlDocument | None:
    for name in GROUP_VARS_ALL:
        doc = _try_load(path / name)
        if doc is not None:
            return doc
    return None


def _try_load(file: Path) -> YamlDocument | None:
    if not file.is_file():
        return None
    try:
        return load_yaml(file, display=_display(file))
    except ValidationError:
        return None  # the inventory loader already reported it


def _at(doc: YamlDocument | None, loc: Sequence[str | int], message: str, hint: str) -> Problem:
    if doc is None:
        return Problem("group_vars/all.yml", message, field=".".join(map(str, loc)), hint=hint)
    line = doc.line_of(loc) if doc.root is not None else None
    return Problem(doc.path, message, line=line, field=".".join(map(str, loc)), hint=hint)


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
