"""Errors that stop the program, and the exit codes they map to.

Failures of a step are *data* (journal states), never exceptions. The
exceptions here are for what stops the program: bad input, a corrupt journal,
a lease held by someone else, a missing tool. Each one carries a message, a
hint (what to do next) and its exit code; exactly one place, the CLI's
``main``, turns them into stderr text and an exit status.

Hierarchy::

    CutoverError                    exit 1   anything else
    ├── InputError                  exit 2   invalid input; nothing was executed
    │   ├── ValidationError                  one or more Problems (file, line, field)
    │   └── NotFound                         unknown run, step, environment, file
    ├── LeaseHeld                   exit 6   another controller drives this run
    │   ├── LeaseLost                        this controller was taken over (fenced)
    │   └── ClaimHeld                        an unfinished run holds SAMUs this run would reach
    ├── JournalCorrupt              exit 7   the hash chain or the file is broken
    └── ToolMissing                 exit 1   an external program is not installed

Run outcomes (not exceptions) have their own codes: 0 completed, 3 paused
awaiting a decision, 4 failed and halted, 5 rolled back.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ExitCode(enum.IntEnum):
    """Exit statuses of the ``cutover`` command; documented in the README."""

    OK = 0
    ERROR = 1
    INVALID_INPUT = 2
    PAUSED = 3
    FAILED = 4
    ROLLED_BACK = 5
    LEASE_HELD = 6
    JOURNAL_CORRUPT = 7
    CHANGES_PRESENT = 8  # `infra diff`: the two plans differ
    POLICY_VIOLATIONS = 9  # `infra check`: at least one rule is broken


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file a user wrote, located as precisely as we can."""

    file: str
    message: str
    line: int | None = None
    field: str | None = None
    hint: str | None = None

    def location(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where} ({self.field})" if self.field else where

    def __str__(self) -> str:
        text = f"{self.location()}: {self.message}"
        return f"{text}\n  hint: {self.hint}" if self.hint else text


class CutoverError(Exception):
    """Base of every error that stops the program."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class InputError(CutoverError):
    """Something the user gave us is wrong; nothing was executed."""

    exit_code = ExitCode.INVALID_INPUT


class ValidationError(InputError):
    """A user-written file failed validation; carries every problem found."""

    def __init__(self, problems: list[Problem], *, what: str = "input") -> None:
        self.problems = problems
        count = len(problems)
        noun = "problem" if count == 1 else "problems"
        body = "\n".join(str(p) for p in problems)
        super().__init__(f"invalid {what}: {count} {noun}\n{body}")


class NotFound(InputError):
    """A named thing (run, step, environment, file) does not exist."""


class LeaseHeld(CutoverError):
    """Another controller holds the lease on this run."""

    exit_code = ExitCode.LEASE_HELD


class LeaseLost(LeaseHeld):
    """This controller's lease was taken over: the journal refuses its appends (fencing)."""


class ClaimHeld(LeaseHeld):
    """An unfinished run holds SAMUs (or their partitions) the new run would reach: one night per SAMU."""


class JournalCorrupt(CutoverError):
    """The journal's hash chain is broken or its file is unreadable."""

    exit_code = ExitCode.JOURNAL_CORRUPT


class ToolMissing(CutoverError):
    """An external program we need is not installed."""

