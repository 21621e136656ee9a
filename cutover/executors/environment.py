"""What a command inherits from the controller's environment: an allow-list, never the operator's secrets.

The operator's shell holds secrets (``PGPASSWORD`` for the PostgreSQL journal,
cloud credentials, tokens). A ``command`` step runs ``/bin/sh`` on the
controller, ansible-runner runs ``ansible-playbook``: each gets only

- ``INHERITED``: PATH, HOME, USER, LOGNAME, LANG, LANGUAGE, LC_*, TZ, TMPDIR, TERM,
  taken from the controller's environment;
- the ``CUTOVER_*`` variables cutover sets itself (``CUTOVER_RUN_ID``,
  ``CUTOVER_STEP``, ``CUTOVER_PHASE``, ``CUTOVER_ENV``, ``CUTOVER_TARGET``,
  ``CUTOVER_SAMU_CODE``, ``CUTOVER_PROJECT_DIR``), never the controller's own
  (``CUTOVER_JOURNAL`` may hold a password);
- what the runbook declares in the step's or action's ``env:`` mapping.

An ``ssh`` step's remote shell gets only the last two (paramiko sends nothing else).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

INHERITED = re.compile(r"^(PATH|HOME|USER|LOGNAME|LANG|LANGUAGE|LC_\w+|TZ|TMPDIR|TERM)$")


def inherited(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The allow-listed part of ``environ`` (the controller's environment by default)."""
    source = os.environ if environ is None else environ
    return {name: value for name, value in source.items() if INHERITED.match(name)}
