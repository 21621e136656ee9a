"""What a playbook targets: the inventory hosts its plays (and the playbooks they import) may run on.

Read from the playbook's ``hosts`` patterns, as Ansible would resolve them against
the inventory. The Ansible executor's readiness check asks it which hosts need a
Python interpreter; the blast radius (``cutover.planning.blast``) asks it which
SAMUs a playbook step can reach.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from cutover.model.inventory import Inventory

_TEMPLATE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def playbook_hosts(path: Path, inventory: Inventory, extra_vars: Mapping[str, Any],
                   seen: frozenset[Path] = frozenset()) -> frozenset[str]:
    """Every inventory host a playbook's plays (and the playbooks it imports) may run on."""
    try:
        plays = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return frozenset(inventory.hosts)  # unreadable: assume the worst (validation names the file)
    hosts: set[str] = set()
    for play in plays if isinstance(plays, list) else []:
        if not isinstance(play, dict):
            continue
        imported = play.get("ansible.builtin.import_playbook") or play.get("import_playbook")
        if isinstance(imported, str) and path.parent / imported not in seen:
            hosts |= playbook_hosts(path.parent / imported, inventory, extra_vars, seen | {path})
        elif "hosts" in play:
            hosts |= resolve_pattern(str(play["hosts"]), inventory, extra_vars)
    return frozenset(hosts)


def resolve_pattern(pattern: str, inventory: Inventory, extra_vars: Mapping[str, Any]) -> frozenset[str]:
    """An Ansible host pattern (``a:b``, ``a,b``, ``!x``, ``&y``) as inventory hosts."""
    text = _TEMPLATE.sub(lambda m: str(extra_vars.get(m[1], m[0])), pattern)
    if "{{" in text:
        return frozenset(inventory.hosts)  # depends on something only known at run time
    chosen: set[str] = set()
    for term in (t.strip() for t in re.split(r"[:,]", text) if t.strip()):
        if term.startswith("!"):
            chosen -= set(group_hosts(inventory, term[1:]))
        elif term.startswith("&"):
            chosen &= set(group_hosts(inventory, term[1:]))
        else:
            chosen |= set(group_hosts(inventory, term))
    return frozenset(chosen)


def group_hosts(inventory: Inventory, name: str) -> tuple[str, ...]:
    if name in ("all", "*"):
        return tuple(inventory.hosts)
    if name in inventory.groups:
        return tuple(inventory.groups[name])
    return (name,) if name in inventory.hosts else ()  # localhost and unknown names reach no inventory host
