"""The ``command`` executor: a shell command on the controller, in the project folder.

Fanned out, the command runs once per target with ``CUTOVER_TARGET`` (and
``CUTOVER_SAMU_CODE`` for a SAMU) in its environment, so a runbook can say
``run: ./scripts/check.sh "$CUTOVER_TARGET"`` without any templating.

Each command runs in its own process group (so a timeout or Ctrl-C stops the
whole pipeline it started) and is killed if the controller dies: an action
outliving its controller could take effect after ``cutover resume`` already
decided it had not.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from cutover.core.actions import ActionRequest, ActionResult, Outcome, Target, clip
from cutover.inventory import Inventory
from cutover.redact import Redactor

# `setpriv --pdeathsig KILL` (util-linux) makes the command die with the controller.
# It costs one extra exec; a Python preexec_fn doing the same prctl would force a
# full fork() of this large, threaded process for every command (measured: 3.8 ms
# against 1.6 ms per command, serialised under the GIL).
_SETPRIV = shutil.which("setpriv")
_LAUNCHER = [_SETPRIV, "--pdeathsig", "KILL"] if _SETPRIV else []


class LocalExecutor:
    """Runs ``command`` actions with /bin/sh on the controller."""

    batched = False

    def __init__(self, project_dir: Path, inventory: Inventory | None = None, redactor: Redactor | None = None) -> None:
        self.project_dir = project_dir
        self.inventory = inventory
        self.redact = redactor or Redactor()
        # The controller's environment, encoded once: copying and encoding os.environ for each
        # command was a third of the engine's CPU per command (measured with yappi, 2,000 commands).
        self._base_env = {os.fsencode(k): os.fsencode(v) for k, v in os.environ.items()}
        self._base_env[b"CUTOVER_PROJECT_DIR"] = os.fsencode(str(project_dir))

    def run(self, request: ActionRequest) -> Mapping[Target, ActionResult]:
        return {target: self._run_one(request, target) for target in request.targets}

    def _run_one(self, request: ActionRequest, target: Target) -> ActionResult:
        if request.cancel.is_set():
            return ActionResult(Outcome.CANCELLED, detail="not started: the run is stopping")
        started = time.monotonic()
        try:
            process = subprocess.Popen(
                [*_LAUNCHER, "/bin/sh", "-c", request.action.run], cwd=self.project_dir,
                env=self._environment(request, target), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, start_new_session=True,  # its own group: a timeout stops all it started
            )
        except OSError as exc:
            return ActionResult(Outcome.FAILED, detail=f"cannot start /bin/sh: {exc}", duration=0.0)
        outcome, output = self._wait(process, request)
        duration = time.monotonic() - started
        text = clip(self.redact(output.decode("utf-8", errors="replace")))
        status = process.returncode
        if outcome is Outcome.OK and status != 0:
            return ActionResult(Outcome.FAILED, detail=f"exit status {status}", output=text,
                                exit_status=status, duration=duration)
        detail = {Outcome.OK: "", Outcome.TIMEOUT: f"timed out after {request.timeout}s; stopped",
                  Outcome.CANCELLED: "stopped by the operator"}[outcome]
        return ActionResult(outcome, detail=detail, output=text, exit_status=status, duration=duration)

    def _wait(self, process: subprocess.Popen[bytes], request: ActionRequest) -> tuple[Outcome, bytes]:
        deadline = None if request.timeout is None else time.monotonic() + request.timeout
        while True:
            try:
                output, _ = process.communicate(timeout=0.1)
                return Outcome.OK, output
            except subprocess.TimeoutExpired:
                pass
            if request.cancel.is_set():
                return Outcome.CANCELLED, _stop(process)
            if deadline is not None and time.monotonic() > deadline:
                return Outcome.TIMEOUT, _stop(process)

    def _environment(self, request: ActionRequest, target: Target) -> dict[bytes, bytes]:
        extra = dict(request.environment)
        if target is not None:
            extra["CUTOVER_TARGET"] = target
            samu = self.inventory.samus.get(target) if self.inventory else None
            if samu is not None:
                extra["CUTOVER_SAMU_CODE"] = samu.code
        return {**self._base_env, **{os.fsencode(k): os.fsencode(v) for k, v in extra.items()}}


def _stop(process: subprocess.Popen[bytes]) -> bytes:
    """Stop the command and everything it started (its process group)."""
    for sig, grace in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            output, _ = process.communicate(timeout=grace)
            return output
        except subprocess.TimeoutExpired:
            continue
    output, _ = process.communicate()
    return output
