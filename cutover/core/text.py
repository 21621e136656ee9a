"""What text from outside may be: names that become paths, and text that reaches a reader.

**Names.** A run id becomes a file name (``STATE_DIR/reports/RUN_ID.html``), a
URL path segment (``/runs/RUN_ID``) and an environment value
(``CUTOVER_RUN_ID``). So it is a name, never a path: one to 128 characters
among ASCII letters, digits, ``.``, ``_`` and ``-``, starting with a letter or
a digit (so never ``.``, ``..`` nor a hidden file). ``check_name`` is the one
check, made wherever a name enters: ``run --run-id``, ``report``, ``runs
import``, ``journal copy``, the board's routes.

**Visible text.** A label, an approval's reason or a command's output may hold
control characters (an escape sequence that rewrites a terminal) or Unicode
direction overrides (U+202E shows ``exe.txt`` as ``txt.exe``). ``visible``
writes each as a ``\\uXXXX`` escape a reader can see; line breaks and tabs are
kept unless asked.
"""

from __future__ import annotations

import re

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
_NAME = re.compile(rf"^{NAME_PATTERN}$")
NAME_RULE = "1 to 128 letters, digits, '.', '_' or '-', starting with a letter or a digit"

# C0 controls but tab and line feed, DEL, C1 controls, and the Unicode marks that reorder or hide text.
_UNSEEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
_UNSEEN_OR_BREAK = re.compile(f"[\t\n{_UNSEEN.pattern[1:-1]}]")


def is_name(value: object) -> bool:
    """Whether ``value`` is a name (see the module docstring)."""
    return isinstance(value, str) and bool(_NAME.match(value))


def name_problem(value: object, what: str = "run id") -> str | None:
    """Why ``value`` is not a name, or None when it is one."""
    if is_name(value):
        return None
    return f"{what} {visible(str(value), breaks=False)[:80]!r} is not a name: {NAME_RULE}"


def visible(text: str, *, breaks: bool = True) -> str:
    """``text`` with every control character and direction override written as a visible ``\\uXXXX`` escape.

    With ``breaks=False`` (one-line places: a label, a table cell), tabs and line feeds are escaped too.
    """
    pattern = _UNSEEN if breaks else _UNSEEN_OR_BREAK
    return pattern.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def as_name(text: str) -> str:
    """``text`` made into a name (for generated ids): every other character becomes '-'."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip(".-_") or "run"
    return name[:96]
