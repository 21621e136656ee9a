"""Fuzzed inputs: whatever a person does to a file, cutover refuses it clearly or accepts it, never crashes.

Hypothesis mutates the shipped runbooks, inventories and Pulumi stack files
(drop, duplicate or reindent a line, change a scalar's type, add unicode or
control characters, truncate) and runs the real command in-process through
its one error boundary (``run_cli``). The outcome must be a documented exit
code with, for a refusal, a message naming the file; never exit 1 ("internal
error", a bug). A journal with random bytes flipped must fail `journal verify`
with 7 naming the first bad event, or 2 when the file is no journal at all.

The number of examples is fixed for `make test`; run more with
`pytest tests/fuzz --fuzz-examples 2000`.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cutover.cli.main import run_cli

REPO = Path(__file__).resolve().parents[2]
SCALARS = ["5", "-1", "3.5", "true", "no", "null", "~", "[a, b]", "{a: 1}", "''", '"x"', "2026-11-30",
           "0.0.0.0/0", "10.130.300.0/24", "'é漢字\\u0007'", "[]", "{}", "!!binary aGk=", "&a x", "*a"]
NOISE = ["é", "漢", "\u0000", "\u0007", "\t", "\u202e", "\ufeff", "\r", "🚑", ":", "- ", "#", "{{", "((wave))", "'"]


@st.composite
def mutated(draw: st.DrawFn, text: str) -> str:
    """The file's text with one or two of the mistakes people (and editors) make."""
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 2))):
        if not lines:
            break
        index = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["drop", "duplicate", "reindent", "scalar", "noise", "truncate"]))
        line = lines[index]
        if action == "drop":
            del lines[index]
        elif action == "duplicate":
            lines.insert(index, line)
        elif action == "reindent":
            lines[index] = " " * draw(st.integers(0, 12)) + line.lstrip()
        elif action == "scalar" and ":" in line:
            key = line.split(":", 1)[0]
            lines[index] = f"{key}: {draw(st.sampled_from(SCALARS))}"
        elif action == "noise":
            at = draw(st.integers(0, len(line)))
            lines[index] = line[:at] + draw(st.sampled_from(NOISE)) + line[at:]
        else:
            lines = lines[:index] + [line[:draw(st.integers(0, len(line)))]]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz") / "project"
    for folder in ("inventories", "runbooks", "playbooks", "infra"):
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("lab-ssh", "__pycache__"))
    return root


@contextmanager
def replaced(path: Path, text: str) -> Iterator[None]:
    original = path.read_bytes()
    path.write_text(text, encoding="utf-8")
    try:
        yield
    finally:
        path.write_bytes(original)


def outcome(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = run_cli(list(args))
    return code, capsys.readouterr().err


def assert_clean(code: int, err: str, allowed: set[int], shown: str) -> None:
    assert code in allowed, f"exit {code}:\n{err}"
    assert "internal error" not in err and "Traceback" not in err, err
    if code == 2:
        assert shown in err or "not found" in err, f"the refusal does not name {shown}:\n{err}"


def examples(request: pytest.FixtureRequest, default: int) -> settings:
    count = request.config.getoption("--fuzz-examples") or default
    return settings(max_examples=count, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


INVENTORY_FILES = ["inventories/lab/hosts.yml", "inventories/lab/group_vars/all.yml",
                   "inventories/lab/host_vars/samu-30.yml", "inventories/production/hosts.yml",
                   "inventories/production/group_vars/all.yml"]


@pytest.mark.parametrize("name", INVENTORY_FILES)
def test_a_mutated_inventory_is_refused_with_its_file_named_or_accepted(project, capsys, request, name):
    path = project / name
    env = name.split("/")[1]

    @examples(request, 25)
    @given(mutated(path.read_text()))
    def check(text: str) -> None:
        with replaced(path, text):
            for command in (["validate", "bigbang"], ["tenant", "list"]):
                code, err = outcome(capsys, "--project-dir", str(project), *command, "--env", env)
                assert_clean(code, err, {0, 2}, env)

    check()


def test_a_mutated_runbook_is_refused_with_file_and_line_or_accepted(project, capsys, request):
    path = project / "runbooks" / "bigbang.yaml"

    @examples(request, 60)
    @given(mutated(path.read_text()))
    def check(text: str) -> None:
        with replaced(path, text):
            code, err = outcome(capsys, "--project-dir", str(project), "validate", "bigbang", "--env", "lab")
            assert_clean(code, err, {0, 2}, "bigbang.yaml")

    check()


def test_a_mutated_stack_file_is_refused_or_checked(project, capsys, request):
    path = project / "infra" / "Pulumi.rehearsal.yaml"

    @examples(request, 6)  # a stack file that is still valid evaluates the whole program: seconds each
    @given(mutated(path.read_text()))
    def check(text: str) -> None:
        with replaced(path, text):
            code, err = outcome(capsys, "--project-dir", str(project), "infra", "check", "--env", "rehearsal")
            assert_clean(code, err, {0, 2, 9}, "Pulumi.rehearsal.yaml")

    check()


def test_a_journal_with_flipped_bytes_fails_verify_naming_the_first_bad_event(tmp_path, capsys, request):
    state = tmp_path / "state"
    from cutover.journal.sqlite import SqliteJournal

    with SqliteJournal(state / "journal.db", "tester") if state.mkdir() is None else None as journal:
        for index in range(30):
            journal.append("r1", "step_started", {"step": f"s{index}", "target": None, "attempt": 1})
    pristine = (state / "journal.db").read_bytes()

    @examples(request, 40)
    @given(st.lists(st.tuples(st.integers(0, len(pristine) - 1), st.integers(1, 255)), min_size=1, max_size=4))
    def check(flips: list[tuple[int, int]]) -> None:
        data = bytearray(pristine)
        for offset, mask in flips:
            data[offset] ^= mask
        for suffix in ("-wal", "-shm"):
            Path(f"{state / 'journal.db'}{suffix}").unlink(missing_ok=True)
        (state / "journal.db").write_bytes(bytes(data))
        code, err = outcome(capsys, "--state-dir", str(state), "journal", "verify")
        assert code in (0, 2, 7), f"exit {code}:\n{err}"
        assert "internal error" not in err and "Traceback" not in err, err
        if code == 7:
            assert "journal" in err
        if code == 0:  # a flip SQLite never reads (free space, padding) changes no event
            with sqlite3.connect(state / "journal.db") as conn:
                assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 30

    check()
