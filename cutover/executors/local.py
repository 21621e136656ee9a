"""The ``command`` executor: a shell command on the controller, in the project folder.

Fanned out, the command runs once per target with ``CUTOVER_TARGET`` (and
``CUTOVER_SAMU_CODE`` for a SAMU) in its environment, so a runbook can say
``run: ./scripts/check.sh "$CUTOVER_TARGET"`` without any templating. The rest
of its environment is an allow-list of the controller's (PATH, HOME, locale...),
the run's ``CUTOVER_*`` variables and the runbook's ``env:``, never the
operator's secrets (``cutover.executors.environment``).

Each command runs in its own process group (so a timeout or Ctrl-C stops the
whole pipeline it started) and is killed, group and all, if the controller dies
(``cutover.executors.reaper``): an action outliving its controller could take
effect after ``cutover resume`` already decided it had not.

Its output and its exit are both waited for through the kernel (a pidfd and
the output pipe in one ``select``), so a command is seen finished as soon as it
is, not at the next poll.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from cutover.core.actions import ActionRequest, ActionResult, Outcome, Target, clip
from cutover.core.steps import Action, ActionStep
from cutover.errors import ToolMissing
from cutover.executors.environment import inherited
from cutover.executors.reaper import GroupReaper
from cutover.model.inventory import Inventory
from cutover.model.redact import Redactor

CHECK_EVERY = 0.1  # seconds between looks at the run's cancel flag and the step's timeout while a command runs


class LocalExecutor:
    """Runs ``command`` actions with /bin/sh on the controller."""

    batched = False

    def __init__(self, project_dir: Path, inventory: Inventory | None = None, redactor: Redactor | None = None) -> None:
        self.project_dir = project_dir
        self.inventory = inventory
        self.redact = redactor or Redactor()
        # The allow-listed part of the controller's environment (never its secrets: see
        # cutover.executors.environment), encoded once: copying and encoding os.environ for each
        # command was a third of the engine's CPU per command (measured with yappi, 2,000 commands).
        self._base_env = {os.fsencode(k): os.fsencode(v) for k, v in inherited().items()}
        self._base_env[b"CUTOVER_PROJECT_DIR"] = os.fsencode(str(project_dir))
        self._reaper = GroupReaper()

    def ready(self, uses: Sequence[tuple[ActionStep, Action]] = ()) -> None:
        """Refuse, before anything is journalled, a kernel without pidfds (Linux < 5.3): commands could not be waited for."""
        try:
            os.close(os.pidfd_open(os.getpid()))
        except (AttributeError, OSError) as exc:
            raise ToolMissing(f"this controller cannot wait for commands through a pidfd ({exc})",
                              hint="run cutover on Linux 5.3 or later") from None

    def close(self) -> None:
        self._reaper.close()

    def run(self, request: ActionRequest) -> Mapping[Target, ActionResult]:
        return {target: self._run_one(request, target) for target in request.targets}

    def _run_one(self, request: ActionRequest, target: Target) -> ActionResult:
        if request.cancel.is_set():
            return ActionResult(Outcome.CANCELLED, detail="not started: the run is stopping")
        started = time.monotonic()
        try:
            process = subprocess.Popen(
                ["/bin/sh", "-c", request.action.run], cwd=self.project_dir,
                env=self._environment(request, target), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, start_new_session=True,  # its own group: a timeout stops all it started
            )
        except OSError as exc:
            return ActionResult(Outcome.FAILED, detail=f"cannot start /bin/sh: {exc}", duration=0.0)
        self._reaper.running(process.pid)
        with _Running(process) as running:
            outcome = _wait(running, request)
            self._reaper.ended(process.pid)  # exited, not yet reaped: its id cannot have been reused
            status = process.wait()
            output = running.output()
        duration = time.monotonic() - started
        text = clip(self.redact(output.decode("utf-8", errors="replace")))
        if outcome is Outcome.OK and status != 0:
            return ActionResult(Outcome.FAILED, detail=f"exit status {status}", output=text,
                                exit_status=status, duration=duration)
        detail = {Outcome.OK: "", Outcome.TIMEOUT: f"timed out after {request.timeout}s; stopped",
                  Outcome.CANCELLED: "stopped by the operator"}[outcome]
        return ActionResult(outcome, detail=detail, output=text, exit_status=status, duration=duration)

    def _environment(self, request: ActionRequest, target: Target) -> dict[bytes, bytes]:
        extra = dict(request.environment)
        if target is not None:
            extra["CUTOVER_TARGET"] = target
            samu = self.inventory.samus.get(target) if self.inventory else None
            if samu is not None:
                extra["CUTOVER_SAMU_CODE"] = samu.code
        return {**self._base_env, **{os.fsencode(k): os.fsencode(v) for k, v in extra.items()}}


class _Running:
    """A started command: its output read as it comes, its exit seen through a pidfd, never reaped here."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        self.process = process
        self.exited = False
        self._out = process.stdout.fileno()
        self._pidfd = os.pidfd_open(process.pid)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._out, selectors.EVENT_READ)
        self._selector.register(self._pidfd, selectors.EVENT_READ)
        self._chunks: list[bytes] = []
        self._output_ended = False

    def __enter__(self) -> _Running:
        return self

    def __exit__(self, *_: object) -> None:
        self._selector.close()
        os.close(self._pidfd)
        assert self.process.stdout is not None
        self.process.stdout.close()

    def wait(self, seconds: float, *, for_output: bool = True) -> bool:
        """Read output for up to ``seconds``; True once the command has exited and, ``for_output``, its output ended.

        Waiting for the end of the output too, as ``communicate`` does, keeps
        what a command's last child writes; a stopped command is only waited
        for to exit (a child that escaped its group may hold the pipe forever).
        """
        deadline = time.monotonic() + seconds
        while not (self.exited and (self._output_ended or not for_output)):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            for key, _ in self._selector.select(left):
                if key.fd == self._pidfd:
                    self.exited = True
                    self._selector.unregister(self._pidfd)
                else:
                    self._read()
        return True

    def output(self) -> bytes:
        """What the command wrote, including whatever is already in the pipe."""
        if not self._output_ended:
            os.set_blocking(self._out, False)
            try:
                while self._read():
                    pass
            except BlockingIOError:
                pass
        return b"".join(self._chunks)

    def _read(self) -> bool:
        data = os.read(self._out, 65536)
        if data:
            self._chunks.append(data)
        else:
            self._output_ended = True
            self._selector.unregister(self._out)
        return bool(data)


def _wait(running: _Running, request: ActionRequest) -> Outcome:
    """Until the command ends, the step's timeout passes, or the run is cancelled (then the command is stopped)."""
    deadline = None if request.timeout is None else time.monotonic() + request.timeout
    while not running.wait(CHECK_EVERY):
        if request.cancel.is_set():
            _stop(running)
            return Outcome.CANCELLED
        if deadline is not None and time.monotonic() > deadline:
            _stop(running)
            return Outcome.TIMEOUT
    return Outcome.OK


def _stop(running: _Running) -> None:
    """Stop the command and everything it started (its process group); returns once its leader has exited."""
    for sig, grace in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(running.process.pid, sig)
        except ProcessLookupError:
            break
        if running.wait(grace, for_output=False):
            return
    running.wait(3600.0, for_output=False)  # SIGKILL cannot be ignored: only an uninterruptible sleep delays the exit
