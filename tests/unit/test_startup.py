"""What every `cutover` command pays before doing anything: only what it draws or runs is imported or built.

The timings are `benchmarks/startup_bench.py`'s; these tests hold what makes
them, deterministically: the modules a command imports (each in a fresh
process) and the dataclasses built at import (``cutover.core.lazy``).
"""

from __future__ import annotations

import dataclasses
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, ClassVar

import pytest

from cutover.core.lazy import dataclass
from cutover.journal.sqlite import SqliteJournal

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

# what no reading command needs: the executors, the write side, the YAML models and their parser, the board
NOT_FOR_READING = ("cutover.executors", "cutover.app.runs", "cutover.model", "cutover.planning", "cutover.web",
                   "cutover.infra", "cutover.lab", "pydantic", "yaml", "ansible_runner", "paramiko", "apprise")

IMPORTED = """
import sys
from cutover.cli.main import run_cli
code = run_cli({args!r})
built = [f"{{m}}.{{n}}" for m, module in list(sys.modules.items()) if m.startswith("cutover.core.")
         for n, c in vars(module).items() if isinstance(c, type) and c.__module__ == m and "__dataclass_params__" in vars(c)]
print("EXIT", code)
print("MODULES", " ".join(sorted(sys.modules)))
print("BUILT", " ".join(sorted(built)))
"""


def imported_by(*args: str) -> tuple[set[str], set[str]]:
    """The modules a fresh process has imported once ``cutover ARGS`` is done, and the core dataclasses it built."""
    result = subprocess.run([sys.executable, "-c", IMPORTED.format(args=list(args))], capture_output=True,
                            text=True, timeout=60)
    lines = dict(line.split(" ", 1) if " " in line else (line, "") for line in result.stdout.splitlines()
                 if line.split(" ", 1)[0] in ("EXIT", "MODULES", "BUILT"))
    assert lines.get("EXIT") == "0", result.stdout[-2000:] + result.stderr[-2000:]
    return set(lines["MODULES"].split()), set(lines["BUILT"].split())


def among(modules: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes))


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """A state directory whose journal holds three finished or paused runs (written by an earlier version)."""
    shutil.copy(FIXTURES / "journal-main-e03a4f1.db", tmp_path / "journal.db")
    return tmp_path


def test_help_imports_neither_rich_nor_the_journal():
    modules, _ = imported_by("--help")
    assert among(modules, ("rich", "cutover.core.records", "cutover.core.state", "cutover.journal", "sqlite3",
                           *NOT_FOR_READING)) == []


def test_status_of_a_finished_run_imports_nothing_it_does_not_draw(state_dir: Path):
    modules, built = imported_by("--state-dir", str(state_dir), "status", "r1")
    assert among(modules, (*NOT_FOR_READING, "cutover.app.history", "numpy")) == []
    assert "rich.table" in modules  # it draws: rich is imported here, and only where drawn
    # the record kinds r1's journal holds are built; a kind it never had is not
    assert "cutover.core.records.StepSucceeded" in built
    assert "cutover.core.records.CallsCounted" not in built


def test_runs_imports_nothing_it_does_not_draw(state_dir: Path):
    modules, _ = imported_by("--state-dir", str(state_dir), "runs")
    assert among(modules, (*NOT_FOR_READING, "cutover.app.history", "numpy")) == []


def test_importing_every_reading_command_builds_no_dataclass_of_the_core():
    code = ("import sys, cutover.cli.read_cmds, cutover.cli.render\n"
            "print(sorted(f'{m}.{n}' for m, module in list(sys.modules.items()) if m.startswith('cutover.core.')"
            " for n, c in vars(module).items() if isinstance(c, type) and c.__module__ == m"
            " and '__dataclass_params__' in vars(c)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_opening_a_journal_at_the_current_schema_writes_nothing(tmp_path: Path):
    path = tmp_path / "journal.db"
    SqliteJournal(path, "alice").close()  # created: the schema written
    with SqliteJournal(path, "bob") as journal:  # as `status` opens it: no write lock taken, nothing fsynced
        assert journal.runs() == []
        assert (tmp_path / "journal.db-wal").stat().st_size == 0


def test_opening_a_journal_makes_again_what_its_schema_lacks(tmp_path: Path):
    path = tmp_path / "journal.db"
    SqliteJournal(path, "alice").close()
    with sqlite3.connect(path) as conn:  # the file's owner can drop the append-only guard
        conn.execute("DROP TRIGGER events_no_update")
    SqliteJournal(path, "bob").close()
    with sqlite3.connect(path) as conn:
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    assert "events_no_update" in names


# ---------------------------------------------------------------------- the lazy dataclass itself


@dataclass(frozen=True)
class Base:
    KIND: ClassVar[str] = "base"
    name: str = ""


@dataclass(frozen=True)
class Child(Base):
    count: int = 0
    tags: tuple[str, ...] = ()
    extra: dict[str, int] = dataclasses.field(default_factory=dict)


@dataclass
class Plain:
    value: int


def fresh_classes() -> tuple[type, type]:
    """A lazy base and subclass never used before (each test its own: the first use is what is tested)."""
    @dataclass(frozen=True)
    class Parent:
        name: str

    @dataclass(frozen=True)
    class Kid(Parent):
        count: int = 0

    return Parent, Kid


def test_a_lazy_dataclass_is_not_built_until_used_then_is_the_standard_one():
    parent, kid = fresh_classes()
    assert "__dataclass_params__" not in vars(parent) and "__dataclass_params__" not in vars(kid)
    made = kid("a", 2)
    assert "__dataclass_params__" in vars(parent) and "__dataclass_params__" in vars(kid)
    assert made == kid("a", 2) and made != kid("a", 3) and hash(made) == hash(kid("a", 2))
    assert repr(made).endswith("Kid(name='a', count=2)")
    assert kid.__match_args__ == ("name", "count")
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.count = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        kid()  # type: ignore[call-arg]


def test_built_it_is_what_the_standard_decorator_makes():
    lazy_parent, lazy_kid = fresh_classes()
    lazy_kid("a")

    @dataclasses.dataclass(frozen=True)
    class Parent:
        name: str

    @dataclasses.dataclass(frozen=True)
    class Kid(Parent):
        count: int = 0

    for lazy, standard in ((lazy_parent, Parent), (lazy_kid, Kid)):
        assert lazy.__doc__ == standard.__doc__
        assert repr(lazy.__dataclass_params__) == repr(standard.__dataclass_params__)
        assert [(f.name, f.default) for f in dataclasses.fields(lazy)] == \
            [(f.name, f.default) for f in dataclasses.fields(standard)]
        assert lazy.__init__.__qualname__.split("<locals>.")[-1] == standard.__init__.__qualname__.split("<locals>.")[-1]
    with pytest.raises(dataclasses.FrozenInstanceError):
        lazy_kid("a").other = 1  # type: ignore[attr-defined]


def test_reading_the_fields_of_an_unused_class_builds_it():
    parent, kid = fresh_classes()
    assert [f.name for f in dataclasses.fields(kid)] == ["name", "count"]
    _, other = fresh_classes()
    assert dataclasses.is_dataclass(other)
    assert dataclasses.replace(other("a"), count=4) == other("a", 4)


def test_defaults_factories_and_mutable_classes_behave_as_declared():
    one, two = Child(name="x"), Child(name="x")
    assert one.KIND == "base" and one.extra == {} and one.extra is not two.extra
    plain = Plain(1)
    plain.value = 2
    assert plain == Plain(2) and Plain.__hash__ is None


def test_threads_making_and_reading_the_first_instances_all_wait_for_the_one_build():
    """While one thread builds a class, another making an instance or reading its fields waits for the build.

    (The engine's slots journal their first StepStarted at the same moment: one of them once reached the
    base class's __init__ while the class was half built.)
    """
    failures: list[BaseException] = []
    switching = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns as often as they can: a half-built class would be seen
    try:
        race(failures)
    finally:
        sys.setswitchinterval(switching)


def race(failures: list[BaseException]) -> None:
    for _ in range(30):
        parent, kid = fresh_classes()
        barrier, made, layouts = threading.Barrier(6), [], []

        def first(kid: type = kid, barrier: threading.Barrier = barrier, made: list[Any] = made,
                  layouts: list[Any] = layouts) -> None:
            barrier.wait()
            try:
                made.append(kid(name="t", count=1))
                layouts.append(tuple(f.name for f in dataclasses.fields(kid)))
            except Exception as exc:  # noqa: BLE001 - collected: the assertion below says which
                failures.append(exc)

        def reader(kid: type = kid, barrier: threading.Barrier = barrier, layouts: list[Any] = layouts) -> None:
            barrier.wait()
            layouts.append(tuple(f.name for f in dataclasses.fields(kid)))

        threads = [threading.Thread(target=first) for _ in range(4)] + [threading.Thread(target=reader) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == [], failures
        assert len(made) == 4 and all(m == kid("t", 1) for m in made)
        assert set(layouts) == {("name", "count")}
