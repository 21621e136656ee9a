"""The national core of the trusted cloud, as described in an inventory.

``cutover_national`` in ``group_vars/all`` describes what every SAMU shares:
the region and its availability zones. The infrastructure program reads the
rest of the national core (networks, bare-metal pools, RAC clusters) from here
too; this model grows with it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class NationalCore(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    region: str = Field(min_length=1)
    availability_zones: list[str] = Field(min_length=1)
