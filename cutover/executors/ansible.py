"""The ``playbook`` executor: one ansible-runner run per batch of targets.

``batched = True``: the engine hands over a whole batch; one ``ansible-playbook``
covers it (``--limit`` = the targets, ``--forks`` = the step's concurrency) and
each target's outcome is read from the runner's events::

    every task ok / changed / skipped on the host              OK
    a task failed on the host (not ignored, not rescued)       FAILED (task name and message in detail)
    host unreachable (connection refused, timeout...)          UNREACHABLE
    host key unknown or changed, authentication refused        REFUSED (Ansible reports it "unreachable")
    no event at all for a host of the limit                    FAILED (never looks OK)
    ansible-playbook stopped before any task (syntax error,
      missing playbook, bad option)                            REFUSED (nothing ran), with the error
    request.timeout reached (ansible-runner ``timeout``)       TIMEOUT for every host not already settled
    request.cancel set (ansible-runner ``cancel_callback``)    CANCELLED for every host not already settled

A target of ``None`` means no ``--limit``: the playbook's own ``hosts``, one
overall result. Exceptions are raised only for what stops the program: no
``ansible-playbook`` next to this Python (``ToolMissing``), a broken inventory
(no hosts file, key or known_hosts; a target host without an explicit
``ansible_python_interpreter``; ``InputError``/``NotFound``).

What is passed to ansible-runner (``interface.init_runner``, then ``run``):

- ``playbook``: ``<project>/playbooks/<name>`` (absolute); ``inventory``: the
  inventory's hosts file (``hosts.yml``; Ansible reads ``group_vars/`` and
  ``host_vars/`` beside it). Not the folder itself: Ansible would try every file
  in it as an inventory source, the lab's SSH key included, and quote its
  lines in warnings;
- ``limit``, ``forks``, ``tags``, ``timeout``, ``cancel_callback``,
  ``event_handler``, ``status_handler``, ``quiet=True``,
  ``suppress_env_files=True`` (nothing written under ``env/``),
  ``suppress_output_file=True`` (no raw ``stdout``: it can hold unredacted task
  output), ``cmdline="--private-key <inventory key>"``;
- ``extravars``: the action's extra vars whose names do not look secret (they end
  up on the command line, so in ``ps`` and in the ``command`` artifact). Those
  whose names look secret go to a 0600 file in ``<state_dir>/ansible/.transient``
  passed as ``-e @file``, deleted as soon as Ansible reports the playbook's start (it
  has read its extra vars by then) and in any case when the run ends;
- ``envvars`` (see ``ansible_environment``): ``ANSIBLE_CONFIG`` (the project's
  ``ansible.cfg``, else an empty one: never a user's ``~/.ansible.cfg`` or
  ``/etc/ansible``), strict host-key checking against the inventory's
  known_hosts only (never added, never updated), key-only batch-mode SSH,
  pipelining, ``ControlPersist`` masters in a private per-executor folder,
  and ``PATH`` with this Python's bin folder first. The process environment
  is cut down to an allow-list (PATH, HOME, locale, proxies, vault password
  file settings...): a secret in the operator's shell does not reach
  Ansible's artifacts.

What is written, all under ``<state_dir>/ansible/`` (folders 0700, files 0600),
per call in ``<run_id>/<step>-<phase>[.N]/`` (N counts further calls for the
same step and phase: resume, verification after doubt...):

- ``command``: the command line and environment (ansible-runner's), rewritten
  redacted as soon as the run starts;
- ``status``, ``rc``: ansible-runner's status and the exit status;
- ``stdout``: Ansible's display text, redacted (no_log results are already
  hidden by Ansible);
- ``summary.json``: each target's result as journalled (redacted).

No ``job_events/`` are kept (the event handler returns False): raw events carry
unredacted module results. The last ``KEEP_RUNS`` run folders are kept; older
ones are removed when a new run starts.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cutover.core.actions import ActionRequest, ActionResult, Outcome, Target, clip
from cutover.core.steps import Action, ActionStep
from cutover.errors import InputError, NotFound, ToolMissing
from cutover.executors.environment import INHERITED
from cutover.executors.playbooks import playbook_hosts
from cutover.model.inventory import HOSTS_FILES, Inventory
from cutover.model.redact import PLACEHOLDER, SECRET_NAME, Redactor

KEEP_RUNS = 20  # run folders of artifacts kept under <state_dir>/ansible
CONTROL_PERSIST = "30s"  # SSH master connections outlive a task, so the next task reuses them
_ORPHAN_AFTER = 600.0  # seconds after which a left-over secret extra-vars file is removed
_POLL = 0.1  # seconds between ansible-runner's checks of cancel and timeout (its default is 5)
_KEEP_LINES = 400  # display lines kept in memory per call (the stdout artifact and error search)
_TARGET_OUTPUT = 1500  # characters of Ansible output kept per target in the journal
_SAFE_IDENT = re.compile(r"[^A-Za-z0-9_.-]")
_REFUSAL = re.compile(r"host key verification failed|remote host identification has changed|"
                      r"no \w+ host key is known|permission denied \(|too many authentication failures", re.I)
_ERROR_LINE = re.compile(r"^\s*(?:\[ERROR\]|ERROR!)", re.M)

# Inherited from the controller's environment: what every command inherits (cutover.executors.environment),
# and Ansible's proxies and vault settings; everything else is dropped (see the module docstring).
_ENV_ALLOW = re.compile(
    rf"{INHERITED.pattern}|^((?i:https?_proxy|no_proxy)|ANSIBLE_VAULT_PASSWORD_FILE|ANSIBLE_VAULT_IDENTITY_LIST)$"
)
# Set by ansible-runner itself; kept when the environment is cut down.
_RUNNER_ENV = ("ANSIBLE_CALLBACK_PLUGINS", "ANSIBLE_STDOUT_CALLBACK", "ANSIBLE_RETRY_FILES_ENABLED",
               "AWX_ISOLATED_DATA_DIR", "RUNNER_OMIT_EVENTS", "RUNNER_ONLY_FAILED_EVENTS")
_HOST_EVENTS = ("runner_on_ok", "runner_on_failed", "runner_on_unreachable", "runner_on_skipped")


# ----------------------------------------------------------------------------- environment


def ansible_environment(inventory: Inventory, *, config: Path, control_dir: Path) -> dict[str, str]:
    """The ANSIBLE_* settings of every run (also used by the benchmark's bare ansible-playbook)."""
    known_hosts = inventory.require_known_hosts()
    ssh_args = [
        "-o", "ControlMaster=auto", "-o", f"ControlPersist={CONTROL_PERSIST}",
        # Only the inventory's file counts; an unknown or changed key is refused, never added or updated.
        "-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=yes", "-o", "UpdateHostKeys=no",
        # The inventory's key only (no agent keys, no ~/.ssh keys), and never a prompt.
        "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
    ]
    env = {
        "ANSIBLE_CONFIG": str(config),
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_SSH_ARGS": shlex.join(ssh_args),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir),
        "ANSIBLE_PRIVATE_KEY_FILE": str(inventory.require_ssh_key()),
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
    }
    vault = inventory.require_vault_password()
    if vault is not None:  # Ansible decrypts the inventory's !vault values itself
        env["ANSIBLE_VAULT_PASSWORD_FILE"] = str(vault)
    return env


def venv_bin() -> Path:
    """The folder of this Python's scripts: ansible-playbook must come from the same environment."""
    return Path(sys.executable).parent


def hosts_file(inventory: Inventory) -> Path:
    for name in HOSTS_FILES:
        if (inventory.path / name).is_file():
            return inventory.path / name
    raise NotFound(f"inventory {inventory.name!r} has no hosts.yml in {inventory.path}")


# ----------------------------------------------------------------------------- events


@dataclass
class _HostTally:
    """What the events said about one host."""

    lines: list[str] = field(default_factory=list)
    failed_tasks: list[str] = field(default_factory=list)
    failure: str | None = None  # first non-ignored failure: "task 'x' failed: message"
    unreachable: str | None = None
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1


@dataclass
class _Tally:
    """Folds ansible-runner events as they arrive (in the runner's thread)."""

    hosts: dict[str, _HostTally] = field(default_factory=dict)
    stats: dict[str, dict[str, int]] | None = None
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=_KEEP_LINES))
    tasks_started: int = 0
    rc: int | None = None  # ansible-playbook's exit status, once known
    on_playbook_start: Callable[[], None] | None = None
    stats_data: dict[str, Any] = field(default_factory=dict)  # what the playbook gave set_stats (a probe's value)

    def __call__(self, event: Mapping[str, Any]) -> bool:
        # playbook_on_start comes after Ansible built its variable manager, which reads the extra
        # vars eagerly; earlier events (inventory warnings) may come before they are read.
        if self.on_playbook_start is not None and event.get("event") == "playbook_on_start":
            self.on_playbook_start()
            self.on_playbook_start = None
        text = str(event.get("stdout") or "")
        if text.strip():
            self.lines.extend(text.splitlines())
        kind = str(event.get("event", ""))
        data = event.get("event_data") or {}
        if kind == "playbook_on_task_start":
            self.tasks_started += 1
        elif kind == "playbook_on_stats":
            self.stats = {name: dict(data.get(name) or {}) for name in
                          ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored", "processed")}
            custom = data.get("artifact_data")
            self.stats_data = dict(custom) if isinstance(custom, Mapping) else {}
        elif kind in _HOST_EVENTS and data.get("host"):
            self._host_event(kind, data, text)
        return False  # never write job_events/: raw events hold unredacted module results

    def _host_event(self, kind: str, data: Mapping[str, Any], text: str) -> None:
        host = self.hosts.setdefault(str(data["host"]), _HostTally())
        task = str(data.get("task") or "?")
        raw = data.get("res")
        res: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        if kind == "runner_on_ok":
            word = "changed" if res.get("changed") else "ok"
        elif kind == "runner_on_skipped":
            word = "skipped"
        elif kind == "runner_on_unreachable":
            word = "unreachable"
            host.unreachable = host.unreachable or _message(res)
        elif data.get("ignore_errors"):
            word = "failed (ignored)"
        else:
            word = "failed"
            host.failed_tasks.append(task)
            host.failure = host.failure or f"task {task!r} failed: {_message(res)}"
        host.count({"failed (ignored)": "ignored"}.get(word, word))
        host.lines.append(f"[{task}] {word}")
        host.lines.extend(f"  {line}" for line in _result_lines(res))


def _hidden(res: Mapping[str, Any]) -> bool:
    return bool(res.get("_ansible_no_log") or res.get("censored"))


def _result_lines(res: Mapping[str, Any], keep: int = 10) -> list[str]:
    """The end of a task's msg/stdout/stderr, for the target's output; nothing from a no_log result."""
    if _hidden(res):
        return ["(output hidden: the task has no_log)"]
    lines: list[str] = []
    for key in ("msg", "stdout", "stderr"):
        value = res.get(key)
        if isinstance(value, str) and value.strip():
            lines += [f"{key}: {line}" for line in value.strip().splitlines()[-keep:]]
    return lines


def _message(res: Mapping[str, Any]) -> str:
    """One line saying why a task failed (its msg, then the last line of stderr or stdout); never no_log data."""
    if _hidden(res):
        return "(details hidden: the task has no_log)"
    parts = []
    for key in ("msg", "stderr", "stdout"):
        value = res.get(key)
        if isinstance(value, str) and value.strip():
            last = [line for line in value.strip().splitlines() if line.strip()][-1]
            parts.append(" ".join(last.split())[:300])
            if key != "msg":
                break
    if not parts and res.get("rc") is not None:
        parts.append(f"exit status {res['rc']}")
    return ": ".join(parts) or "no message"


# ----------------------------------------------------------------------------- the executor


@dataclass(frozen=True)
class _Call:
    """One ansible-runner invocation being prepared: where it writes, what it passes."""

    request: ActionRequest
    folder: Path
    playbook: Path
    redact: Redactor
    secrets_file: Path | None


class AnsibleExecutor:
    """Runs ``playbook`` actions through ansible-runner, one run per batch of targets."""

    batched = True

    def __init__(self, project_dir: Path, inventory: Inventory, redactor: Redactor, state_dir: Path) -> None:
        self.project_dir = project_dir
        self.inventory = inventory
        self.redactor = redactor
        self.root = state_dir / "ansible"
        self._lock = threading.Lock()
        self._pruned: set[str] = set()
        self._control_dir: Path | None = None

    # -- public ------------------------------------------------------------------

    def run(self, request: ActionRequest) -> Mapping[Target, ActionResult]:
        if request.cancel.is_set():
            return {t: ActionResult(Outcome.CANCELLED, detail="not started: the run is stopping")
                    for t in request.targets}
        started = time.monotonic()
        playbook = self.project_dir / "playbooks" / request.action.playbook
        if not playbook.is_file():
            return self._not_started(request, f"playbook {request.action.playbook!r} not found in "
                                     f"{self.project_dir / 'playbooks'}",
                                     "check the name; playbooks live in the project's playbooks/ folder")
        self._check_interpreters(request.targets)
        call = self._prepare(request, playbook)
        try:
            tally, status, rc = self._execute(call)
        finally:
            if call.secrets_file is not None:
                call.secrets_file.unlink(missing_ok=True)
        tally.rc = rc
        results = self._results(call, tally, status, rc)
        elapsed = time.monotonic() - started
        results = {t: replace(r, duration=elapsed) for t, r in results.items()}
        self._write_artifacts(call, tally, results)
        return results

    def close(self) -> None:
        """Remove the SSH control folder (master connections then expire on their own)."""
        with self._lock:
            folder, self._control_dir = self._control_dir, None
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    def ready(self, uses: Sequence[tuple[ActionStep, Action]] = ()) -> None:
        """Raise now, before anything is journalled: ansible-playbook missing, SSH material missing or
        not usable unattended, a host without its Python, vault values without their password file.

        ``uses``: the runbook's playbook actions with their steps; every host their plays target
        (``executors.playbooks``), within each step's targets, must name its Python."""
        _playbook_binary()
        self.inventory.require_known_hosts()
        _check_unattended_key(self.inventory.require_ssh_key())
        self._check_interpreters(sorted(self._hosts_of(uses)))
        self.inventory.require_vault_password()

    def _hosts_of(self, uses: Sequence[tuple[ActionStep, Action]]) -> set[str]:
        hosts: set[str] = set()
        for step, action in uses:
            targeted = playbook_hosts(self.project_dir / "playbooks" / action.playbook, self.inventory, action.extra_vars)
            hosts |= set(targeted & set(self.inventory.resolve_targets(step.for_each))) if step.for_each \
                else set(targeted)
        return hosts

    # -- preparing -----------------------------------------------------------------

    def _check_interpreters(self, targets: Iterable[Target]) -> None:
        """Interpreter discovery is unreliable on the sites: every target names its Python."""
        missing = []
        for target in targets:
            if target is None:
                continue
            host = self.inventory.hosts.get(target)
            if host is None:
                raise NotFound(f"host {target!r} is not in inventory {self.inventory.name!r}")
            if not host.vars.get("ansible_python_interpreter"):
                missing.append(target)
        if missing:
            raise InputError(
                f"no ansible_python_interpreter for {', '.join(missing)} in inventory {self.inventory.name!r}",
                hint="name the Python on the hosts explicitly, e.g. `ansible_python_interpreter: /usr/bin/python3` "
                "in group_vars/all.yml (interpreter discovery is not relied upon)")

    def _prepare(self, request: ActionRequest, playbook: Path) -> _Call:
        run_dir = self._private_dir(self.root / _safe(request.run_id))
        self._prune_once(request.run_id)
        folder = _new_attempt_dir(run_dir, f"{_safe(request.step_id)}-{request.phase.value}")
        extra = dict(request.action.extra_vars)
        secret_vars = {k: v for k, v in extra.items() if SECRET_NAME.search(k)}
        redact = Redactor.of([*self.redactor.secrets, *_scalars(secret_vars.values())])
        secrets_file = self._secrets_file(secret_vars) if secret_vars else None
        return _Call(request, folder, playbook, redact, secrets_file)

    def _secrets_file(self, values: Mapping[str, Any]) -> Path:
        folder = self._private_dir(self.root / ".transient")
        path = folder / f"{uuid.uuid4().hex}.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(values, handle)
        return path

    def _private_dir(self, path: Path) -> Path:
        for folder in (self.root.parent, self.root, path):
            folder.mkdir(mode=0o700, exist_ok=True)
            os.chmod(folder, 0o700)  # mkdir's mode is masked by the umask
        return path

    def _prune_once(self, run_id: str) -> None:
        """Keep the newest KEEP_RUNS run folders (checked once per run id per executor)."""
        with self._lock:
            if run_id in self._pruned:
                return
            self._pruned.add(run_id)
        # A secret extra-vars file outlives its run only if the controller died: Ansible reads it
        # within seconds, so one older than _ORPHAN_AFTER belongs to no live run.
        for orphan in (self.root / ".transient").glob("*.json") if (self.root / ".transient").is_dir() else ():
            if time.time() - orphan.stat().st_mtime > _ORPHAN_AFTER:
                orphan.unlink(missing_ok=True)
        runs = [p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")]
        runs.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        for old in runs[KEEP_RUNS:]:
            if old.name != _safe(run_id):
                shutil.rmtree(old, ignore_errors=True)

    def _control_path_dir(self) -> Path:
        # Short and private: a unix socket path is limited to ~100 bytes, and the state
        # folder can be deep. One per executor, so no master from another process (another
        # inventory, another known_hosts) is ever reused.
        with self._lock:
            if self._control_dir is None:
                self._control_dir = Path(tempfile.mkdtemp(prefix="cutover-ssh-"))
                weakref.finalize(self, shutil.rmtree, str(self._control_dir), True)
            return self._control_dir

    def _config_file(self) -> Path:
        shipped = self.project_dir / "ansible.cfg"
        if shipped.is_file():
            return shipped
        empty = self.root / "ansible.cfg"  # ANSIBLE_CONFIG must name a .cfg file; an empty one isolates
        if not empty.is_file():
            _write_private(empty, "# Written by cutover: no ansible.cfg in the project; settings come from the environment.\n")
        return empty

    def _envvars(self, request: ActionRequest) -> dict[str, str]:
        env = ansible_environment(self.inventory, config=self._config_file(), control_dir=self._control_path_dir())
        path = os.pathsep.join([str(venv_bin()), os.environ.get("PATH", os.defpath)])
        return {**request.environment, **env, "PATH": path}

    # -- running -----------------------------------------------------------------------

    def _runner_kwargs(self, call: _Call, tally: _Tally) -> dict[str, Any]:
        request = call.request
        extra = {k: v for k, v in request.action.extra_vars.items() if not SECRET_NAME.search(k)}
        key = str(self.inventory.require_ssh_key())
        # The inventory names the key relative to its own folder; Ansible would resolve
        # that against ansible-runner's artifacts folder. An extra var beats inventory
        # values, so the absolute path wins everywhere (--private-key alone does not).
        cmdline = ["--private-key", key, "-e", f"ansible_ssh_private_key_file={key}"]
        if call.secrets_file is not None:
            cmdline += ["-e", f"@{call.secrets_file}"]
        targets = [t for t in request.targets if t is not None]
        kwargs: dict[str, Any] = dict(
            private_data_dir=str(call.folder), artifact_dir=str(call.folder.parent), ident=call.folder.name,
            playbook=str(call.playbook), inventory=str(hosts_file(self.inventory)),
            forks=max(1, request.concurrency), cmdline=shlex.join(cmdline), envvars=self._envvars(request),
            quiet=True, suppress_env_files=True, suppress_output_file=True, rotate_artifacts=0,
            event_handler=tally, cancel_callback=request.cancel.is_set,
            status_handler=lambda data, runner_config: self._scrub_command(call, data),
        )
        if targets:
            kwargs["limit"] = ",".join(targets)
        if extra:
            kwargs["extravars"] = extra
        if request.action.tags:
            kwargs["tags"] = ",".join(request.action.tags)
        if request.timeout is not None:
            kwargs["timeout"] = max(1, math.ceil(request.timeout))  # the runner counts whole seconds
        return kwargs

    def _execute(self, call: _Call) -> tuple[_Tally, str, int | None]:
        from ansible_runner.exceptions import AnsibleRunnerException, ConfigurationError
        from ansible_runner.interface import init_runner

        binary = _playbook_binary()
        secrets_file = call.secrets_file
        tally = _Tally(on_playbook_start=(lambda: secrets_file.unlink(missing_ok=True)) if secrets_file else None)
        try:
            kwargs = self._runner_kwargs(call, tally)
            runner = init_runner(**kwargs)
            _tune(runner, binary, kwargs["envvars"])
            status, rc = runner.run()
        except (AnsibleRunnerException, ConfigurationError, OSError) as exc:
            tally.lines.append(f"ERROR! ansible-runner: {' '.join(str(exc).split())[:300]}")
            return tally, "error", None
        return tally, str(status), rc

    def _scrub_command(self, call: _Call, data: Mapping[str, Any]) -> None:
        """ansible-runner writes the command and its environment just before 'running': redact it at once."""
        if data.get("status") != "running":
            return
        path = call.folder / "command"
        try:
            recorded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        env = {k: PLACEHOLDER if SECRET_NAME.search(k) else call.redact(str(v))
               for k, v in (recorded.get("env") or {}).items()}
        command = [call.redact(str(part)) for part in recorded.get("command") or []]
        _write_private(path, json.dumps({"command": command, "cwd": recorded.get("cwd"), "env": env}, indent=1))

    # -- results ---------------------------------------------------------------------

    def _results(self, call: _Call, tally: _Tally, status: str, rc: int | None) -> dict[Target, ActionResult]:
        if None in call.request.targets:
            return {None: self._overall(call, tally, status, rc)}
        return {t: self._one(call, tally, status, rc, t) for t in call.request.targets if t is not None}

    def _one(self, call: _Call, tally: _Tally, status: str, rc: int | None, target: str) -> ActionResult:
        host = tally.hosts.get(target, _HostTally())
        summary = self._summary(call, tally, host, target)
        output = clip(call.redact("\n".join(host.lines)), _TARGET_OUTPUT)
        settled = _settled(host, tally.stats, target)
        if settled is not None:
            outcome, detail, hint = settled
        elif status in ("timeout", "canceled"):
            outcome, detail, hint = _stopped(call.request, status)
        elif tally.tasks_started == 0:
            outcome, detail, hint = _never_started(tally, rc)
        else:
            outcome, detail = Outcome.FAILED, f"no result from Ansible for {target} (ansible-playbook status {status}, rc {rc})"
            hint = _no_result_hint(tally)
        # exit_status stays empty: ansible-playbook's status is the batch's, not this host's (it is in summary).
        return ActionResult(outcome, detail=call.redact(detail), output=output, hint=hint, summary=summary)

    def _overall(self, call: _Call, tally: _Tally, status: str, rc: int | None) -> ActionResult:
        """No --limit: one result for the whole playbook."""
        everyone = _HostTally()
        for host in tally.hosts.values():
            everyone.failed_tasks += host.failed_tasks
            for name, value in host.counts.items():
                everyone.counts[name] = everyone.counts.get(name, 0) + value
        summary = self._summary(call, tally, everyone, None)
        output = clip(call.redact("\n".join(tally.lines)))
        if status in ("timeout", "canceled"):
            outcome, detail, hint = _stopped(call.request, status)
        elif tally.tasks_started == 0 and status != "successful":
            outcome, detail, hint = _never_started(tally, rc)
        elif status == "successful" and rc == 0:
            outcome, detail, hint = Outcome.OK, _counts_line(everyone.counts), None
        else:
            failures = [f"{name}: {h.failure or h.unreachable}" for name, h in tally.hosts.items()
                        if h.failure or h.unreachable]
            outcome = Outcome.FAILED
            detail = "; ".join(failures) or f"ansible-playbook failed (rc {rc})"
            hint = "see the output and the artifacts folder"
        return ActionResult(outcome, detail=call.redact(detail), output=output, exit_status=rc, hint=hint,
                            summary=summary)

    def _summary(self, call: _Call, tally: _Tally, host: _HostTally, target: Target) -> dict[str, Any]:
        counts = dict(host.counts)
        if tally.stats is not None and target is not None:  # the play's own recap wins when there is one
            for name, key in (("ok", "ok"), ("changed", "changed"), ("failed", "failures"),
                              ("unreachable", "dark"), ("skipped", "skipped"), ("rescued", "rescued"),
                              ("ignored", "ignored")):
                counts[name] = int(tally.stats[key].get(target, 0))
        summary: dict[str, Any] = {"playbook": call.request.action.playbook,
                                   "tasks": {k: v for k, v in counts.items() if v}, "rc": tally.rc}
        if host.failed_tasks:
            summary["failed_tasks"] = [call.redact(t) for t in dict.fromkeys(host.failed_tasks)]
        if tally.stats_data:  # only playbooks that set_stats (the criteria's probes) carry it
            summary["set_stats"] = json.loads(call.redact(json.dumps(tally.stats_data, default=str)))
        try:
            summary["artifacts"] = str(call.folder.relative_to(self.root.parent))
        except ValueError:
            summary["artifacts"] = str(call.folder)
        return summary

    def _write_artifacts(self, call: _Call, tally: _Tally, results: Mapping[Target, ActionResult]) -> None:
        _write_private(call.folder / "stdout", call.redact("\n".join(tally.lines)) + "\n")
        payload = {str(t) if t is not None else "(all)": r.to_payload() for t, r in results.items()}
        _write_private(call.folder / "summary.json", json.dumps(payload, indent=1, ensure_ascii=False))

    def _not_started(self, request: ActionRequest, detail: str, hint: str) -> dict[Target, ActionResult]:
        return {t: ActionResult(Outcome.REFUSED, detail=detail, hint=hint) for t in request.targets}


# ----------------------------------------------------------------------------- helpers


def _playbook_binary() -> Path:
    binary = venv_bin() / "ansible-playbook"
    if not os.access(binary, os.X_OK):
        raise ToolMissing(f"ansible-playbook not found next to this Python ({binary})",
                          hint=f"install ansible-core in the same environment: {sys.executable} -m pip install ansible-core")
    return binary


def _check_unattended_key(path: Path) -> None:
    """The key must open without a passphrase (nobody types one at 3 a.m.): asked of OpenSSH, which Ansible uses."""
    keygen = shutil.which("ssh-keygen")
    if keygen is None:
        raise ToolMissing("ssh-keygen not found (OpenSSH client)", hint="install openssh-client: Ansible needs it too")
    check = subprocess.run([keygen, "-y", "-P", "", "-f", str(path)], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True)
    if check.returncode == 0:
        return
    said = " ".join(check.stderr.split())
    if "passphrase" in said:
        raise InputError(f"SSH key {path} is protected by a passphrase",
                         hint="the controller needs a key it can use unattended")
    raise InputError(f"cannot read SSH key {path}: {said or f'ssh-keygen exit status {check.returncode}'}",
                     hint="set ansible_ssh_private_key_file to a private key file OpenSSH can read")


def _tune(runner: Any, binary: Path, keep: Iterable[str]) -> None:
    """Adjust the prepared run: this venv's ansible-playbook, a small environment, a quick poll."""
    from ansible_runner.utils import get_callback_dir

    config = runner.config
    command = [str(binary), *list(config.command)[1:]]
    setpriv = shutil.which("setpriv")
    if setpriv:
        # Dies with the controller (like the local executor's commands): an action outliving
        # its controller could take effect after `cutover resume` decided it had not.
        command = [setpriv, "--pdeathsig", "KILL", "--", *command]
    config.command = command
    # ansible-runner seeds the environment with ours: keep only what we set, what it needs and the allow-list.
    wanted = set(keep) | set(_RUNNER_ENV)
    config.env = {k: v for k, v in config.env.items() if k in wanted or _ENV_ALLOW.match(k)}
    config.env["ANSIBLE_CALLBACK_PLUGINS"] = get_callback_dir()  # not a user's plugins too
    # ansible-runner drops `settings` (and with them suppress_output_file) when there are no env
    # files: set them on the prepared configuration. No raw stdout/stderr files: they are unredacted.
    config.pexpect_timeout = _POLL
    config.suppress_output_file = True


def _settled(host: _HostTally, stats: Mapping[str, Mapping[str, int]] | None,
             target: str) -> tuple[Outcome, str, str | None] | None:
    """A definitive outcome, or None when the host never finished (the run stopped before the recap).

    The play recap decides when there is one: a failure later rescued by a
    ``rescue:`` block has a failed event but is not a failure of the host.
    """
    if stats is not None:
        unreachable = (host.unreachable or "unreachable") if stats["dark"].get(target) else None
        failure = (host.failure or "a task failed") if stats["failures"].get(target) else None
        ok = target in stats["processed"]
    else:
        unreachable, failure, ok = host.unreachable, host.failure, False
    if unreachable is not None:
        if _REFUSAL.search(unreachable):
            return (Outcome.REFUSED, f"refused by SSH: {unreachable}",
                    "the host key is not the one in the inventory's known_hosts (never added nor replaced), or the "
                    "key was refused; check the fingerprint with the host's owner")
        return Outcome.UNREACHABLE, f"unreachable: {unreachable}", "is sshd running on that host and port?"
    if failure is not None:
        return Outcome.FAILED, failure, "see the output; the artifacts folder holds the whole run"
    if ok and stats is not None:
        return Outcome.OK, _counts_line({k: int(stats[s].get(target, 0)) for k, s in
                                         (("ok", "ok"), ("changed", "changed"), ("skipped", "skipped"))}), None
    return None


def _stopped(request: ActionRequest, status: str) -> tuple[Outcome, str, str | None]:
    if status == "timeout":
        return (Outcome.TIMEOUT, f"playbook not finished after {request.timeout:g}s; ansible-playbook stopped",
                "the playbook may have partly taken effect; raise the step's timeout or check the hosts")
    return Outcome.CANCELLED, "stopped by the operator; ansible-playbook stopped", None


def _never_started(tally: _Tally, rc: int | None) -> tuple[Outcome, str, str | None]:
    """ansible-playbook stopped before its first task: nothing ran anywhere."""
    errors = [line.strip() for line in tally.lines if _ERROR_LINE.match(line)]
    reason = errors[0] if errors else next((line.strip() for line in reversed(tally.lines) if line.strip()),
                                           f"exit status {rc}")
    return (Outcome.REFUSED, f"ansible-playbook stopped before running any task: {reason[:300]}",
            "check the playbook (ansible-playbook --syntax-check) and the inventory; see the artifacts' stdout")


def _no_result_hint(tally: _Tally) -> str:
    if any("no hosts matched" in line.lower() for line in tally.lines):
        return "the playbook's `hosts:` does not include this host"
    return "is the host matched by the playbook's `hosts:`? see the artifacts' stdout"


def _counts_line(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{v} {k}" for k, v in counts.items() if v) or "no task ran"


def _new_attempt_dir(parent: Path, base: str) -> Path:
    """<base>, then <base>.2, <base>.3... (mkdir is atomic: concurrent calls get distinct folders)."""
    for attempt in range(1, 10_000):
        folder = parent / (base if attempt == 1 else f"{base}.{attempt}")
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(folder, 0o700)
        return folder
    raise InputError(f"too many attempts of {base} in {parent}")


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


def _safe(name: str) -> str:
    return _SAFE_IDENT.sub("_", name) or "_"


def _scalars(values: Iterable[Any]) -> list[str]:
    found: list[str] = []
    for value in values:
        if isinstance(value, Mapping):
            found += _scalars(value.values())
        elif isinstance(value, (list, tuple)):
            found += _scalars(value)
        elif value is not None and not isinstance(value, bool):
            found.append(str(value))
    return found
