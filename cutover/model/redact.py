"""Keep secrets out of the journal, logs and reports.

Everything an action prints passes through a ``Redactor`` before it is stored
or shown. It removes values it was told are secret (for instance the values of
inventory variables whose names look secret) and anything that looks like a
credential by its shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cutover.model.yamlsource import VaultText

PLACEHOLDER = "********"

# Names of variables whose values are secrets (vault passwords, DB passwords, tokens...).
SECRET_NAME = re.compile(r"(pass(word|wd)?|secret|token|api[_-]?key|private[_-]?key|credential)", re.I)

_SHAPES = (
    # key=value / key: value where the key names a secret
    re.compile(
        r"(?P<key>\b[\w.-]*(?:pass(?:word|wd)?|secret|token|api[_-]?key)[\w.-]*\b\s*[=:]\s*)"
        r"(?P<value>\"[^\"]*\"|'[^']*'|\S+)",
        re.I,
    ),
    # PEM private keys
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
    # credentials in URLs: scheme://user:password@host
    re.compile(r"(?P<key>\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)(?P<value>[^@\s/]+)(?=@)", re.I),
)


def secret_values(variables: Mapping[str, object], reveal: Callable[[str], str | None] = lambda _: None) -> list[str]:
    """The values of variables whose names say they are secret, and of vault-encrypted ones (recursively).

    ``reveal`` decrypts a vault value (None when it cannot): the decrypted text
    is what Ansible would print, so it is what must be redacted.
    """
    found: list[str] = []
    for name, value in variables.items():
        if isinstance(value, Mapping):
            found.extend(secret_values(value, reveal))
        elif isinstance(value, VaultText):
            plain = reveal(value)
            found.extend([plain] if plain else [])
        elif _names_a_secret(str(name)) and isinstance(value, (str, int)) and str(value):
            found.append(str(value))
    return found


def _names_a_secret(name: str) -> bool:
    # `ansible_ssh_private_key_file` names where a secret is, not the secret itself
    return bool(SECRET_NAME.search(name)) and not name.endswith(("_file", "_path", "_dir"))


@dataclass(frozen=True)
class Redactor:
    """Replaces secret values and secret-shaped text with a placeholder."""

    secrets: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def of(cls, values: Iterable[str]) -> Redactor:
        # Longest first so a secret that contains another is removed whole.
        kept = sorted({v for v in values if len(v) >= 4}, key=len, reverse=True)
        return cls(tuple(kept))

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, PLACEHOLDER)
        for shape in _SHAPES:
            text = shape.sub(_mask, text)
        return text


def _mask(match: re.Match[str]) -> str:
    groups = match.groupdict()
    if groups.get("key") is not None:
        return f"{groups['key']}{PLACEHOLDER}"
    return PLACEHOLDER


SHAPES_ONLY = Redactor()  # passwords in URLs, key=value secrets, PEM keys: what any reader's output is passed through


def redacted(value: Any, redact: Callable[[str], str] = SHAPES_ONLY) -> Any:
    """``value`` with every string in it (keys of mappings too) passed through ``redact``, for JSON and pages alike."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {redacted(key, redact) if isinstance(key, str) else key: redacted(item, redact)
                for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redacted(item, redact) for item in value]
    return value
