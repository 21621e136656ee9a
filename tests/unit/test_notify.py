"""Notifications: what is said to whom, in order, journalled, and never in the way of the run.

Deliveries go to an in-memory fake here; the real Apprise path (SMTP, webhook, a
refusing target) runs in the full lab night (tests/e2e/test_night.py).
"""

from __future__ import annotations

import threading
import time

import pytest

from cutover.app.notify import SAMU_KINDS, Notifier, Route, routes_for, shown_url, url_secrets
from cutover.app.queries import load_run
from cutover.app.runs import create_run, drive_run
from cutover.core.engine import DriveOptions
from cutover.core.notices import NOTICE_KINDS
from cutover.core.state import RunStatus
from cutover.errors import InputError
from cutover.model.runbook import parse_runbook
from cutover.testing import InMemoryJournal, ScriptedExecutor, tiny_inventory

RUNBOOK = """
name: night
steps:
  - id: backup
    kind: command
    run: backup
    for_each: wave1
    sets_mode: backup
    rollback: {run: nominal}
  - id: pnr
    kind: gate
    approvers: [{name: claire, role: change_manager}]
    point_of_no_return: true
  - id: nominal
    kind: command
    run: nominal
    for_each: wave1
    sets_mode: nominal
    rollback: {run: backup-again}
"""

ROOM = Route("json://room.example/hook/tok3n-room-123", "json://room.example #1", frozenset(NOTICE_KINDS), None, "fr")
ONCALL_13 = Route("mailto://u:pw-13-secret@mail.example?to=a@b", "mailto://mail.example #2", SAMU_KINDS,
                  frozenset({"13"}), "en")
DOWN = Route("json://down.example/x/tok3n-down-456", "json://down.example #3", frozenset(NOTICE_KINDS), None, "fr")


class Outbox:
    """Records what each route was sent; ``down`` refuses everything."""

    def __init__(self, down: set[str] = frozenset(), hang: set[str] = frozenset()) -> None:
        self.sent: dict[str, list[str]] = {}
        self.down, self.hang = down, hang
        self.release = threading.Event()

    def __call__(self, route: Route, title: str, body: str) -> str | None:
        if route.shown in self.hang:
            self.release.wait(30)
        if route.shown in self.down:
            return f"connection refused by {route.url}"  # Apprise's text may carry the URL: it must be redacted
        self.sent.setdefault(route.shown, []).append(title)
        return None


def night(notifier: Notifier) -> tuple[InMemoryJournal, RunStatus]:
    journal = InMemoryJournal(operator="claire")
    create_run(journal, parse_runbook(RUNBOOK, "night.yaml"), tiny_inventory(), run_id="r1")
    status = drive_run(journal, "r1", {"command": ScriptedExecutor()}, DriveOptions(auto_approve="lab-bot"),
                       notifier=notifier)
    return journal, status


def samu_notifier(routes: list[Route], outbox: Outbox, **options) -> Notifier:
    names = {s.host: (s.code, s.name) for s in tiny_inventory().samus.values()}
    return Notifier(routes, deliver=outbox, backoff=(0.01, 0.01), samu_names=names, **options)


def test_the_room_and_a_samu_on_call_are_told_in_order_each_in_its_language():
    outbox = Outbox()
    journal, status = night(samu_notifier([ROOM, ONCALL_13], outbox))
    assert status is RunStatus.COMPLETED
    room = outbox.sent[ROOM.shown]
    assert room[0] == "Bascule r1 (night, unit) : démarre" and room[-1] == "Bascule r1 (night, unit) : terminée"
    for code in ("01", "13", "30"):
        mine = [t for t in room if t.startswith(f"SAMU {code} ")]
        assert [t.split(" : ")[1] for t in mine] == ["passage en mode secours", "retour au nominal"]
    assert room.index("Point de non-retour franchi") < room.index(next(t for t in room if "retour au nominal" in t))
    assert [t.split(": ")[1] for t in outbox.sent[ONCALL_13.shown]] == ["now in backup mode", "back to nominal"]
    assert all(t.startswith("SAMU 13 ") for t in outbox.sent[ONCALL_13.shown])
    state = load_run(journal, "r1")
    assert state.notifications_sent == len(room) + 2 and not state.notifications_undelivered


def test_a_target_that_refuses_is_retried_then_given_up_journalled_without_its_credentials():
    outbox = Outbox(down={DOWN.shown})
    journal, status = night(samu_notifier([ROOM, DOWN], outbox))
    assert status is RunStatus.COMPLETED
    assert outbox.sent[ROOM.shown]  # the other target is not held up
    failed = [e.payload for e in journal.events("r1") if e.kind == "notification_failed"]
    first = [(f["attempt"], f["final"]) for f in failed if f["notice"] == "run_started"]
    # retried until the end of the drive cut the backoff short: then one last attempt, final
    assert first[-1][1] and [a for a, _ in first] == list(range(1, len(first) + 1)) and len(first) >= 2, first
    state = load_run(journal, "r1")
    assert {u.target for u in state.notifications_undelivered} == {DOWN.shown}
    journalled = repr([e.payload for e in journal.events("r1")])
    assert "tok3n-down-456" not in journalled and "down.example #3" in journalled


def test_while_the_drive_goes_on_a_failed_delivery_is_retried_with_backoff_then_given_up():
    journal = InMemoryJournal(operator="claire")
    create_run(journal, parse_runbook(RUNBOOK, "night.yaml"), tiny_inventory(), run_id="r1")
    notifier = samu_notifier([DOWN], Outbox(down={DOWN.shown}))
    notifier.start(journal, load_run(journal, "r1"))
    notifier.observe(journal.append("r1", "drive_started", {"command": "run"}))
    deadline = time.monotonic() + 10
    while not load_run(journal, "r1").notifications_undelivered and time.monotonic() < deadline:
        time.sleep(0.01)
    notifier.close()
    failed = [(e.payload["attempt"], e.payload["final"]) for e in journal.events("r1") if e.kind == "notification_failed"]
    assert failed == [(1, False), (2, False), (3, True)]


def test_a_target_that_hangs_does_not_hold_the_run_and_what_it_never_got_is_journalled():
    outbox = Outbox(hang={DOWN.shown})
    started = time.monotonic()
    journal, status = night(samu_notifier([ROOM, DOWN], outbox, flush=0.2))
    took = time.monotonic() - started
    outbox.release.set()
    assert status is RunStatus.COMPLETED
    assert took < 10, took  # the hung delivery waits 30 s; the drive gave it 0.2 s at its end
    undelivered = load_run(journal, "r1").notifications_undelivered
    assert undelivered and all(u.error == "not delivered before the drive ended" for u in undelivered)


def test_a_delivery_that_raises_is_a_failed_delivery_not_a_failed_run():
    def broken(route: Route, title: str, body: str) -> str | None:
        raise RuntimeError(f"plugin bug with {route.url}")

    journal, status = night(Notifier([DOWN], deliver=broken, backoff=()))
    assert status is RunStatus.COMPLETED
    errors = {e.payload["error"] for e in journal.events("r1") if e.kind == "notification_failed"}
    assert errors and all("RuntimeError" in e and "tok3n-down-456" not in e for e in errors)


def test_notify_test_sends_everything_to_the_test_target_and_off_to_nobody():
    inventory = tiny_inventory()
    assert routes_for(inventory, "off") == []
    assert routes_for(inventory, "on") == []  # this inventory configures nobody
    with pytest.raises(InputError, match="cutover_notify_test"):
        routes_for(inventory, "test")


def test_the_url_shown_keeps_scheme_and_host_and_no_credential():
    url = "mailto://cutover:pa55-w0rd@smtp.samu13.example:587?to=regulation@samu13.example"
    shown = shown_url(url)
    assert shown.startswith("mailto://smtp.samu13.example:587 #") and "pa55" not in shown
    assert "pa55-w0rd" in url_secrets(url)


def test_a_bad_notification_target_is_refused_naming_the_file_and_field(tmp_path):
    import shutil
    from pathlib import Path

    from cutover.errors import ValidationError
    from cutover.model.inventory import load_inventory

    repo = Path(__file__).resolve().parents[2]
    inventory = tmp_path / "inventories" / "lab"
    shutil.copytree(repo / "inventories" / "lab", inventory, ignore=shutil.ignore_patterns("lab-ssh"))
    all_vars = inventory / "group_vars" / "all.yml"
    original = all_vars.read_text()
    all_vars.write_text(original + "cutover_notify:\n  - url: not a url\n    events: [samu_backup, lunch]\n")
    with pytest.raises(ValidationError) as refused:
        load_inventory(tmp_path, "lab")
    text = str(refused.value) + "".join(f"{p.location()} {p.field} {p.message}" for p in refused.value.problems)
    assert "all.yml:" in text and "cutover_notify[0].url" in text and "not an Apprise URL" in text, text
    assert "cutover_notify[0].events[1]" in text, text
    all_vars.write_text(original + "cutover_notify:\n  - url: nosuchservice://x\n")
    with pytest.raises(InputError, match=r"cutover_notify\[0\].url: not a URL Apprise can send to"):
        routes_for(load_inventory(tmp_path, "lab"), "on")


def test_notify_test_replaces_every_target_and_on_call_by_the_test_target(tmp_path):
    import shutil
    from pathlib import Path

    from cutover.model.inventory import load_inventory

    repo = Path(__file__).resolve().parents[2]
    inventory = tmp_path / "inventories" / "lab"
    shutil.copytree(repo / "inventories" / "lab", inventory, ignore=shutil.ignore_patterns("lab-ssh"))
    with (inventory / "group_vars" / "all.yml").open("a") as file:
        file.write("cutover_notify:\n  - {url: 'json://room.example/h', events: [gate_waiting]}\n"
                   "cutover_notify_test: json://rehearsal.example/all\n")
    with (inventory / "host_vars" / "samu-13.yml").open("a") as file:
        file.write("samu_oncall:\n  - {url: 'mailto://u:p@smtp.example?to=a@b', lang: en}\n")
    loaded = load_inventory(tmp_path, "lab")
    live = routes_for(loaded, "on")
    assert [(r.shown.split(" #")[0], sorted(r.kinds), r.samus) for r in live] == [
        ("json://room.example", ["gate_waiting"], None),
        ("mailto://smtp.example", sorted(SAMU_KINDS), frozenset({"13"}))]
    rehearsal = routes_for(loaded, "test")
    assert [(r.shown.split(" #")[0], r.kinds, r.samus) for r in rehearsal] == [
        ("json://rehearsal.example", frozenset(NOTICE_KINDS), None)]


def test_a_gate_opening_is_told_when_people_must_approve_not_when_the_lab_approves_itself():
    journal = InMemoryJournal(operator="claire")
    create_run(journal, parse_runbook(RUNBOOK, "night.yaml"), tiny_inventory(), run_id="r1")
    outbox = Outbox()
    status = drive_run(journal, "r1", {"command": ScriptedExecutor()}, DriveOptions(),
                       notifier=samu_notifier([ROOM], outbox))
    assert status is RunStatus.PAUSED
    assert outbox.sent[ROOM.shown][-1] == "Comité go/no-go pnr : en attente"
    outbox = Outbox()
    night(samu_notifier([ROOM], outbox))  # --auto-approve
    assert not any("go/no-go" in title for title in outbox.sent[ROOM.shown])
