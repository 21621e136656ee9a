"""The policy file: the qualified offer's facts the rules check against. (Plain data, no Pulumi.)

``infra/policy.yaml`` says what the SecNumCloud qualification of the cloud
offer covers (its regions and zones, the API endpoints that are qualified, the
volume backends and types encrypted at rest) and what the platform's security
owner has declared (the operators' networks, the services that may be reached
from anywhere, who may reach the databases). It is reviewed on its own, by
people other than those who edit inventories: the rules take these facts from
here, never from the inventory under review, so an inventory cannot make
itself compliant by naming an unencrypted backend "encrypted".

Every mistake is reported with file, line and field before anything runs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cutover.errors import Problem, ValidationError
from cutover.infra.policy import DEFAULT_LIMITS, DatabaseReach, PolicyContext, PublicExposure, TemporaryReach
from cutover.model.yamlsource import load_yaml, problems_from_pydantic

DEFAULT_POLICY_FILE = Path("infra") / "policy.yaml"
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QualifiedRegion(_Strict):
    """A region of the offer: its zones and the API endpoints its qualification covers."""

    zones: list[str] = Field(min_length=1)
    endpoints: list[str] = Field(default_factory=list)

    @field_validator("endpoints")
    @classmethod
    def _https(cls, endpoints: list[str]) -> list[str]:
        for url in endpoints:
            if not url.startswith("https://"):
                raise ValueError(f"{url!r}: a qualified endpoint is an https:// URL")
        return endpoints


class EncryptedStorage(_Strict):
    """Cinder backends and volume types the offer encrypts at rest (SecNumCloud 3.2 §10.1)."""

    encrypted_backends: list[str] = Field(default_factory=list)
    encrypted_volume_types: list[str] = Field(default_factory=list)
    # The provider's multi-attach types (Oracle ASM disks shared by every RAC node).
    multiattach_volume_types: list[str] = Field(default_factory=list)
    # What each backend's Cinder driver hands a host (driver_volume_type), as the provider documents it.
    backend_protocols: dict[str, Literal["iscsi", "rbd", "nvmeof", "fibre_channel", "nfs"]] = Field(
        default_factory=dict)
    # The provider's types whose backend exports iSCSI (RAC shared disks), for a plan that does not define them.
    iscsi_volume_types: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _something(self) -> EncryptedStorage:
        if not self.encrypted_backends and not self.encrypted_volume_types:
            raise ValueError("name at least one encrypted backend or encrypted volume type")
        return self


class PublicService(_Strict):
    """A service declared reachable from anywhere: the security groups with this role, on these ports."""

    role: str = Field(min_length=1)
    protocol: Literal["tcp", "udp"]
    ports: list[int] = Field(min_length=1)
    reason: str = Field(min_length=1)


class TemporaryNetwork(_Strict):
    """A network outside the platform that may reach the databases for a while (e.g. Data Guard from legacy)."""

    cidr: IPNetwork
    reason: str = Field(min_length=1)
    until: dt.date


class DatabaseAccess(_Strict):
    """Database ports, and the only places they may be reached from."""

    ports: list[int] = Field(min_length=1)
    from_zones: list[str] = Field(default_factory=list)
    from_roles: list[str] = Field(default_factory=list)
    from_networks: list[TemporaryNetwork] = Field(default_factory=list)


class StateLocation(_Strict):
    """Where the Pulumi state and the secrets providers' keys may be (URL prefixes), declared in France."""

    backends: list[str] = Field(default_factory=list)
    secrets_providers: list[str] = Field(default_factory=list)

    @field_validator("backends", "secrets_providers")
    @classmethod
    def _not_pulumi_cloud(cls, values: list[str]) -> list[str]:
        for value in values:
            if "pulumi.com" in value or value in ("default", "service"):
                raise ValueError(f"{value!r} is the Pulumi service, hosted in the US")
        return values


class InternalDns(_Strict):
    """The provider's internal DNS: where a zone no one outside the platform may resolve lives."""

    # The attributes Designate's pool scheduler (attribute filter) matches with the internal pool's.
    pool_attributes: dict[str, str] = Field(min_length=1)
    # Suffixes never delegated from the public DNS (e.g. internal., reserved by ICANN for private use).
    private_suffixes: list[str] = Field(min_length=1)
    # The provider's internal resolvers, per region: the only DNS servers a subnet may name.
    resolvers: dict[str, list[ipaddress.IPv4Address | ipaddress.IPv6Address]] = Field(default_factory=dict)

    @field_validator("private_suffixes")
    @classmethod
    def _fully_qualified(cls, suffixes: list[str]) -> list[str]:
        for suffix in suffixes:
            if not suffix.endswith(".") or suffix.startswith(".") or suffix != suffix.lower():
                raise ValueError(f"{suffix!r}: a suffix is a lower-case name with a trailing dot (internal.)")
        return suffixes


class PolicyModel(_Strict):
    offer: str = Field(min_length=1)
    regions: dict[str, QualifiedRegion] = Field(min_length=1)
    storage: EncryptedStorage
    operator_networks: list[IPNetwork] = Field(min_length=1)
    public_services: list[PublicService] = Field(default_factory=list)
    database: DatabaseAccess
    owner_keys: list[str] = Field(default=["cutover-owner", "cutover-samu"], min_length=1)
    state: StateLocation = StateLocation()
    # The provider's documented limits (neutron.conf, default quotas); Neutron's and Nova's defaults otherwise.
    limits: dict[str, int] = Field(default_factory=dict)
    dns: InternalDns | None = None

    @model_validator(mode="after")
    def _resolvers_of_known_regions(self) -> PolicyModel:
        unknown = set(self.dns.resolvers) - set(self.regions) if self.dns is not None else set()
        if unknown:
            raise ValueError(f"dns.resolvers names regions the offer does not list: {', '.join(sorted(unknown))}")
        return self

    @field_validator("limits")
    @classmethod
    def _known_limits(cls, limits: dict[str, int]) -> dict[str, int]:
        unknown = set(limits) - set(DEFAULT_LIMITS)
        if unknown:
            raise ValueError(f"unknown limits {sorted(unknown)}; known: {', '.join(sorted(DEFAULT_LIMITS))}")
        return limits

    @field_validator("operator_networks")
    @classmethod
    def _not_the_internet(cls, networks: list[IPNetwork]) -> list[IPNetwork]:
        for cidr in networks:
            if cidr.prefixlen < (16 if cidr.version == 4 else 48):
                raise ValueError(f"{cidr} is too wide for administrators' access; name the operators' networks")
        return networks


@dataclass(frozen=True)
class PolicyFile:
    """A validated policy file, with where it came from (reports cite it and its digest)."""

    path: str
    sha256: str
    model: PolicyModel

    def zones_of(self, region: str) -> frozenset[str]:
        qualified = self.model.regions.get(region)
        return frozenset(qualified.zones) if qualified is not None else frozenset()

    def all_zones(self) -> frozenset[str]:
        return frozenset(z for r in self.model.regions.values() for z in r.zones)


def policy_path(project_dir: Path, given: Path | None = None) -> Path:
    return given if given is not None else project_dir / DEFAULT_POLICY_FILE


def load_policy(path: Path, *, display: str | None = None) -> PolicyFile:
    """Read and validate a policy file; a ValidationError names file, line and field of each problem."""
    shown = display or str(path)
    if not path.is_file():
        raise ValidationError([Problem(shown, "policy file not found",
                                       hint="the qualified offer's facts live in infra/policy.yaml "
                                            "(see docs/infra.md); pass another with --policy")],
                              what="policy file")
    doc = load_yaml(path, display=shown)
    if not isinstance(doc.data, dict):
        raise ValidationError([Problem(shown, "a policy file is a mapping (offer, regions, storage...)", line=1)],
                              what="policy file")
    try:
        model = PolicyModel.model_validate(doc.data)
    except pydantic.ValidationError as exc:
        raise ValidationError(problems_from_pydantic(doc, exc), what=f"policy file {shown}") from exc
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return PolicyFile(shown, digest, model)


def policy_context(policy: PolicyFile, region: str, *, today: dt.date | None = None) -> PolicyContext:
    """The rules' context for an environment in ``region``: every fact from the policy file.

    A region the offer does not qualify gets no zones at all, so every resource
    placed in a zone there is a violation of ``allowed-zones``.
    """
    model = policy.model
    zones = policy.zones_of(region) if region else policy.all_zones()
    return PolicyContext(
        region=region,
        availability_zones=zones,
        operator_sources=tuple(model.operator_networks),
        encrypted_backends=frozenset(model.storage.encrypted_backends),
        encrypted_volume_types=frozenset(model.storage.encrypted_volume_types),
        multiattach_volume_types=frozenset(model.storage.multiattach_volume_types),
        backend_protocols=dict(model.storage.backend_protocols),
        iscsi_volume_types=frozenset(model.storage.iscsi_volume_types),
        qualified_endpoints={name: frozenset(r.endpoints) for name, r in model.regions.items()},
        public_services=tuple(PublicExposure(s.role, s.protocol, frozenset(s.ports)) for s in model.public_services),
        database=DatabaseReach(
            ports=tuple(model.database.ports), zones=frozenset(model.database.from_zones),
            roles=frozenset(model.database.from_roles),
            temporary=tuple(TemporaryReach(n.cidr, n.until, n.reason) for n in model.database.from_networks),
        ),
        owner_keys=tuple(model.owner_keys),
        state_backends=tuple(model.state.backends),
        limits={**DEFAULT_LIMITS, **model.limits},
        secrets_providers=tuple(model.state.secrets_providers),
        today=today or dt.date.today(),
        dns_pool_attributes=dict(model.dns.pool_attributes) if model.dns else {},
        dns_private_suffixes=tuple(model.dns.private_suffixes) if model.dns else (),
        dns_resolvers={region: frozenset(str(a) for a in addresses)
                       for region, addresses in (model.dns.resolvers.items() if model.dns else [])},
    )
