"""A small in-memory inventory for unit tests (no files)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from cutover.model.inventory import CutoverVars, Host, Inventory, Samu


def tiny_inventory(codes: tuple[str, ...] = ("01", "13", "30"), *, lab: bool = True, name: str = "unit") -> Inventory:
    """SAMUs ``samu-<code>`` in group ``samu`` and ``wave1``; a lab unless told otherwise."""
    hosts: dict[str, Host] = {}
    samus: dict[str, Samu] = {}
    for index, code in enumerate(codes, start=1):
        host = f"samu-{code}"
        hosts[host] = Host(host, frozenset({"all", "samu", "wave1"}), {"samu_code": code})
        samus[host] = Samu(host, code, f"SAMU {code}", ipaddress.IPv4Network(f"10.130.{index}.0/24"), 1, {})
    members = tuple(hosts)
    return Inventory(name=name, path=Path("/nonexistent"), hosts=hosts,
                     groups={"all": members, "samu": members, "wave1": members},
                     samus=samus, settings=CutoverVars(cutover_lab=lab))
