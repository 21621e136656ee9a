"""Evaluate the Pulumi program into a Plan, without the Pulumi CLI and without a cloud.

``plan_environment`` validates the stack file and the inventory here (so a
user's mistake is reported with file and line), then runs ``infra/__main__.py``
under Pulumi's mock runtime in a fresh interpreter (see ``mockrun`` for why a
process per evaluation). ``plan_at_revision`` does the same for the program
and inventory as they were at a git revision, extracted with ``git archive``
(which leaves the repository and its worktrees untouched).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cutover.errors import CutoverError, NotFound, Problem, ToolMissing, ValidationError
from cutover.infra import mockrun
from cutover.infra.plan import Plan, plan_from_registrations
from cutover.infra.stack import CUSTOMER, NAMESPACE, StackConfig, check_region, load_stack
from cutover.infra.validate import require_infrastructure
from cutover.model.inventory import load_inventory

OFFLINE_FLAG = {f"{NAMESPACE}:offlinePlan": "true"}
TREE_PATHS = ("infra", "inventories", "cutover")  # what the program needs from a revision
EVALUATION_TIMEOUT_S = 900


class ProgramFailed(CutoverError):
    """The Pulumi program raised while being evaluated (a bug or an unsupported inventory)."""

    def __init__(self, message: str, *, hint: str | None = None, detail: str = "") -> None:
        super().__init__(message, hint=hint)
        self.detail = detail


def plan_environment(project_dir: Path, env: str, side: str = CUSTOMER) -> Plan:
    """The plan of stack ``env`` as the working tree describes it (the customer's program, or the provider's)."""
    stack = load_stack(project_dir, env, side)
    inventory = load_inventory(project_dir, stack.inventory)
    check_region(stack, require_infrastructure(inventory).region)
    return plan_from_registrations(run_program(stack))


def plan_at_revision(project_dir: Path, ref: str, env: str) -> Plan:
    """The plan of stack ``env`` with the program and inventory of git revision ``ref``."""
    with revision_tree(project_dir, ref) as tree:
        if not (tree / "infra" / "__main__.py").is_file():
            raise NotFound(f"there is no infra/ program at git revision {ref!r}",
                           hint="pick a revision that has infra/__main__.py")
        stack = load_stack(tree, env)
        import_root = tree if (tree / "cutover" / "__init__.py").is_file() else None
        return plan_from_registrations(run_program(stack, import_root=import_root))


def run_program(stack: StackConfig, *, import_root: Path | None = None) -> list[dict[str, Any]]:
    """Run the stack's program under mocks in a child interpreter; its raw registrations."""
    with tempfile.TemporaryDirectory(prefix="cutover-plan-") as tmp:
        out = Path(tmp) / "registrations.json"
        command = [
            sys.executable, mockrun.__file__, "--program", str(stack.program_dir), "--project", stack.project,
            "--stack", stack.stack, "--config", json.dumps(stack.mock_config(OFFLINE_FLAG)), "--out", str(out),
        ]
        if import_root is not None:
            command += ["--import-root", str(import_root)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=EVALUATION_TIMEOUT_S, check=False)
        if not out.is_file():
            raise ProgramFailed("the Pulumi program could not be evaluated",
                                hint="rerun with --debug to see the evaluator's output", detail=done.stderr[-4000:])
        document = json.loads(out.read_text(encoding="utf-8"))
    if "error" in document:
        raise _as_error(document["error"])
    return document["resources"]


def _as_error(error: dict[str, Any]) -> CutoverError:
    if error.get("problems"):
        problems = [Problem(p["file"], p["message"], line=p.get("line"), field=p.get("field"), hint=p.get("hint"))
                    for p in error["problems"]]
        return ValidationError(problems, what="inventory")
    if error.get("kind") == "NotFound":
        return NotFound(error["message"], hint=error.get("hint"))
    return ProgramFailed(f"the Pulumi program failed: {error['kind']}: {error['message']}",
                         hint=error.get("hint") or "rerun with --debug for the program's traceback",
                         detail=error.get("traceback", ""))


# --------------------------------------------------------------------------
# A git revision's tree


@contextmanager
def revision_tree(project_dir: Path, ref: str) -> Iterator[Path]:
    """The project folder as it was at ``ref``, extracted into a temporary directory."""
    prefix = _git(project_dir, "rev-parse", "--show-prefix").strip()
    commit = _git(project_dir, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", missing_ok=True).strip()
    if not commit:
        raise NotFound(f"no git revision {ref!r}", hint="use a branch, tag or commit, e.g. git:HEAD~1 or git:main")
    paths = [f"{prefix}{p}" for p in TREE_PATHS if _exists_at(project_dir, commit, f"{prefix}{p}")]
    with tempfile.TemporaryDirectory(prefix="cutover-rev-") as tmp:
        if paths:
            archive = _git_bytes(project_dir, "archive", "--format=tar", commit, "--", *paths)
            with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
                tar.extractall(tmp, filter="data")
        yield Path(tmp) / prefix


def _exists_at(project_dir: Path, commit: str, path: str) -> bool:
    done = subprocess.run(["git", "cat-file", "-e", f"{commit}:{path}"], cwd=project_dir, capture_output=True)
    return done.returncode == 0


def _git(project_dir: Path, *args: str, missing_ok: bool = False) -> str:
    return _git_bytes(project_dir, *args, missing_ok=missing_ok).decode("utf-8", "replace")


def _git_bytes(project_dir: Path, *args: str, missing_ok: bool = False) -> bytes:
    try:
        done = subprocess.run(["git", *args], cwd=project_dir, capture_output=True, check=False)
    except FileNotFoundError as exc:
        raise ToolMissing("git is not installed; git:REF needs it", hint="install git, or diff two plan files") from exc
    if done.returncode != 0 and not missing_ok:
        message = done.stderr.decode("utf-8", "replace").strip()
        if "not a git repository" in message:
            raise NotFound(f"{project_dir} is not in a git repository, so git:REF cannot be used",
                           hint="diff two plan files written by `cutover infra plan --out`")
        raise CutoverError(f"git {args[0]} failed: {message}")
    return done.stdout
