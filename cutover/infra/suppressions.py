"""Suppressions: written, reasoned, dated exceptions to the policy rules.

An exception to a SecNumCloud or HDS rule is a decision someone answers for,
so it lives in a reviewed file (``infra/policy-suppressions.yaml`` by default),
never in a command-line flag::

    suppressions:
      - rule: no-ingress-from-anywhere
        resource: national-portal-https      # one logical name, exactly (no * or ?)
        reason: partners reach the portal from the Internet until the VPN is in place (CHG-1234)
        expires: 2027-01-31
        approved_by: RSSI                     # optional

A suppression hides the matching violations from the verdict, but every one
used is listed in the output (text, JSON, SARIF). An expired suppression
suppresses nothing and fails the check by itself: the exception must be
renewed, with a reason, or the resource fixed. One that matched nothing is
listed too, so stale entries get cleaned up. An expiry more than a year ahead
is refused: an exception is temporary.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from cutover.errors import Problem, ValidationError
from cutover.infra.policy import RULES, Violation
from cutover.model.yamlsource import YamlDocument, load_yaml, problems_from_pydantic

DEFAULT_SUPPRESSIONS_FILE = Path("infra") / "policy-suppressions.yaml"
MAX_VALIDITY = dt.timedelta(days=366)
MIN_REASON = 10
WILDCARDS = "*?["  # fnmatch patterns: refused  # characters: "ok", "temp" or "see ticket" is not a reason a reviewer can judge


class _SuppressionModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: str
    resource: str = Field(min_length=1)
    reason: str = Field(min_length=MIN_REASON)
    expires: dt.date
    approved_by: str | None = None


class _SuppressionsFileModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    suppressions: list[_SuppressionModel] = Field(default_factory=list)


@dataclass(frozen=True)
class Suppression:
    rule: str
    resource: str  # one logical name, exactly
    reason: str
    expires: dt.date
    approved_by: str | None
    file: str
    line: int

    def matches(self, violation: Violation) -> bool:
        return self.rule == violation.rule and violation.resource == self.resource

    def expired(self, today: dt.date) -> bool:
        return today > self.expires

    def to_json(self) -> dict[str, object]:
        return {"rule": self.rule, "resource": self.resource, "reason": self.reason,
                "expires": self.expires.isoformat(), "approved_by": self.approved_by,
                "file": self.file, "line": self.line}


@dataclass(frozen=True)
class Suppressed:
    violation: Violation
    suppression: Suppression


@dataclass(frozen=True)
class SuppressionOutcome:
    violations: list[Violation]  # what still breaks the check
    suppressed: list[Suppressed]
    expired: list[Suppression]  # each fails the check
    unused: list[Suppression]


def suppressions_path(project_dir: Path, given: Path | None) -> tuple[Path, bool]:
    """The file to read, and whether the user named it (a named file must exist; the default may not)."""
    return (given, True) if given is not None else (project_dir / DEFAULT_SUPPRESSIONS_FILE, False)


def load_suppressions(path: Path, *, display: str | None = None, required: bool = False,
                      today: dt.date | None = None) -> list[Suppression]:
    shown = display or str(path)
    if not path.is_file():
        if required:
            raise ValidationError([Problem(shown, "suppressions file not found",
                                           hint="pass an existing file, or leave --suppressions out")],
                                  what="suppressions file")
        return []
    doc = load_yaml(path, display=shown)
    try:
        model = _SuppressionsFileModel.model_validate(doc.data if doc.data is not None else {})
    except pydantic.ValidationError as exc:
        raise ValidationError(problems_from_pydantic(doc, exc), what=f"suppressions file {shown}") from exc
    problems = _problems(doc, model, today or dt.date.today())
    if problems:
        raise ValidationError(problems, what=f"suppressions file {shown}")
    return [Suppression(s.rule, s.resource, s.reason.strip(), s.expires, s.approved_by, shown,
                        doc.line_of(("suppressions", i)) or 1)
            for i, s in enumerate(model.suppressions)]


def _problems(doc: YamlDocument, model: _SuppressionsFileModel, today: dt.date) -> list[Problem]:
    known = {rule.id for rule in RULES}
    problems = []
    for i, entry in enumerate(model.suppressions):
        if entry.rule not in known:
            problems.append(Problem(doc.path, f"unknown rule {entry.rule!r}", line=doc.line_of(("suppressions", i,
                                    "rule")), field=f"suppressions[{i}].rule",
                                    hint=f"rules: {', '.join(sorted(known))}"))
        if any(c in entry.resource for c in WILDCARDS):
            problems.append(Problem(doc.path, f"resource {entry.resource!r} is a pattern",
                                    line=doc.line_of(("suppressions", i, "resource")),
                                    field=f"suppressions[{i}].resource",
                                    hint="name each resource exactly, one entry per resource: a pattern would "
                                         "switch a rule off for resources nobody reviewed"))
        if entry.expires - today > MAX_VALIDITY:
            problems.append(Problem(doc.path, f"expires {entry.expires}, more than a year ahead",
                                    line=doc.line_of(("suppressions", i, "expires")),
                                    field=f"suppressions[{i}].expires",
                                    hint="an exception is temporary: renew it when it expires, with a reason"))
    return problems


def apply_suppressions(violations: list[Violation], suppressions: list[Suppression],
                       today: dt.date) -> SuppressionOutcome:
    live = [s for s in suppressions if not s.expired(today)]
    remaining, suppressed, used = [], [], set()
    for violation in violations:
        match = next((s for s in live if s.matches(violation)), None)
        if match is None:
            remaining.append(violation)
        else:
            suppressed.append(Suppressed(violation, match))
            used.add(id(match))
    expired = [s for s in suppressions if s.expired(today)]
    unused = [s for s in live if id(s) not in used]
    return SuppressionOutcome(remaining, suppressed, expired, unused)
