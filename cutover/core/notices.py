"""What the people outside the driver's terminal are told, from the journal's events.

Pure: a record and the run's state in, short notices out (French by default, English
available), each naming the SAMU, the step and what the SAMU's team should expect.
``cutover.app.notify`` routes them to Apprise targets and journals each delivery.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Literal, get_args

from cutover.core import records as r
from cutover.core.state import RunState
from cutover.core.text import visible

if TYPE_CHECKING:
    from dataclasses import dataclass
else:  # each class built when first used, not at import (start-up: cutover.core.lazy)
    from cutover.core.lazy import dataclass

# the events a notification target can subscribe to (cutover_notify[].events)
NoticeKind = Literal["run_started", "run_paused", "run_failed", "run_completed", "run_rolled_back", "gate_waiting",
                     "pnr_passed", "window_at_risk", "samu_backup", "samu_nominal", "gate_criteria"]
NOTICE_KINDS: tuple[str, ...] = get_args(NoticeKind)
# A title is one short line: a mail's subject header longer than SMTP's 1000 octets is refused (RFC 5321),
# so a long runbook or SAMU name is cut in the title (the body keeps it whole) and the title is cut last.
NAME_IN_TITLE = 60
TITLE_MAX = 200


def _brief(text: str, limit: int = NAME_IN_TITLE) -> str:
    """``text`` cut to ``limit`` characters, the cut marked with an ellipsis."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


@dataclass(frozen=True)
class Notice:
    kind: str
    step: str | None
    samu: str | None  # the SAMU's code, for notices about one SAMU
    title: dict[str, str]  # lang -> text
    body: dict[str, str]

    def text(self, lang: str) -> tuple[str, str]:
        """Title and body in ``lang``; a detail from a command or a person never carries a raw control character.

        The title is one line of at most ``TITLE_MAX`` characters (a mail's subject).
        """
        return (_brief(visible(self.title.get(lang, self.title["fr"]), breaks=False), TITLE_MAX),
                visible(self.body.get(lang, self.body["fr"])))


def notices_for(record: r.Record, state: RunState, samu_names: dict[str, tuple[str, str]], *,
                auto_approved: bool = False) -> list[Notice]:
    """``samu_names``: target host -> (code, name) for every SAMU of the inventory.

    ``auto_approved``: the drive approves its gates itself (a lab's --auto-approve), so
    a gate opening is not news for anyone.
    """
    run = f"{state.run_id} ({_brief(state.runbook_name)}, {_brief(state.env)})"
    if isinstance(record, r.DriveStarted):
        verb = {"run": ("démarre", "started"), "resume": ("reprend", "resumed")}.get(record.command)
        if verb is None:
            return []
        return [_run_notice("run_started", None, f"Bascule {run} : {verb[0]}", f"Cutover {run}: {verb[1]}",
                            f"Le pilote {state.created_by or ''} conduit la bascule; suivez-la sur le tableau de bord.",
                            "The driver is running the cutover; follow it on the board.")]
    if isinstance(record, r.GateOpened):
        if auto_approved:
            return []
        # said when the gate opens, whether the driver's terminal asks or the run pauses for `cutover approve`
        return [_run_notice("gate_waiting", record.step, f"Comité go/no-go {record.step} : en attente",
                            f"Go/no-go {record.step}: waiting",
                            f"Le run {state.run_id} attend les approbations du comité {record.step}.",
                            f"Run {state.run_id} waits for the approvals of gate {record.step}.")]
    if isinstance(record, r.CriteriaMeasured):
        return [criteria_notice(record)]
    if isinstance(record, r.RunPaused):
        if record.reason == "gate":
            return []  # told when the gate opened
        return [_run_notice("run_paused", record.step, f"Bascule {run} : en pause", f"Cutover {run}: paused",
                            record.detail, record.detail)]
    if isinstance(record, r.RunFailed):
        return [_run_notice("run_failed", record.step, f"Bascule {run} : ÉCHEC, arrêtée", f"Cutover {run}: FAILED, halted",
                            f"{record.detail}. Le pilote décide : reprise ou retour arrière.",
                            f"{record.detail}. The driver decides: resume or rollback.")]
    if isinstance(record, r.RunCompleted):
        return [_run_notice("run_completed", None, f"Bascule {run} : terminée", f"Cutover {run}: completed",
                            "Toutes les étapes sont faites.", "Every step is done.")]
    if isinstance(record, r.RunRolledBack):
        to = record.to or "le début / the start"
        return [_run_notice("run_rolled_back", None, f"Bascule {run} : retour arrière terminé",
                            f"Cutover {run}: rolled back", f"Revenu au point après {to}.",
                            f"Back to the rollback point after {to}.")]
    if isinstance(record, r.GatePassed) and record.point_of_no_return:
        return [_run_notice("pnr_passed", record.step, "Point de non-retour franchi", "Point of no return passed",
                            f"Comité {record.step} validé : plus de retour arrière avant ce point.",
                            f"Gate {record.step} passed: no rollback before this point any more.")]
    return _samu_notices(record, state, samu_names)


def _samu_notices(record: r.Record, state: RunState, samu_names: dict[str, tuple[str, str]]) -> list[Notice]:
    if not isinstance(record, (r.StepSucceeded, r.UndoSucceeded)) or record.target not in samu_names:
        return []
    info = next((s for s in state.steps if s.id == record.step), None)
    mode = info.sets_mode if info is not None else None
    if isinstance(record, r.UndoSucceeded):  # undoing the backup step returns the SAMU to nominal (on legacy)
        mode = "nominal" if mode == "backup" else None
    code, name = samu_names[record.target][0], _brief(samu_names[record.target][1])
    if mode == "backup":
        return [Notice("samu_backup", record.step, code,
                       {"fr": f"SAMU {code} ({name}) : passage en mode secours",
                        "en": f"SAMU {code} ({name}): now in backup mode"},
                       {"fr": f"Étape {record.step}. Les appels au 15 sont pris en local et enregistrés; "
                              "vous serez prévenus du retour au nominal.",
                        "en": f"Step {record.step}. Calls to the 15 are answered locally and recorded; "
                              "you will be told when it returns to nominal."})]
    if mode == "nominal":
        return [Notice("samu_nominal", record.step, code,
                       {"fr": f"SAMU {code} ({name}) : retour au nominal",
                        "en": f"SAMU {code} ({name}): back to nominal"},
                       {"fr": f"Étape {record.step}. La téléphonie est revenue au fonctionnement normal; "
                              "ce qui a été enregistré en mode secours est rejoué.",
                        "en": f"Step {record.step}. Telephony is back to normal; what was recorded in backup "
                              "mode is replayed."})]
    return []


_VERDICTS = {"pass": ("conforme", "pass"), "FAIL": ("NON CONFORME", "FAIL"), "warn": ("à surveiller", "warn")}


def criteria_notice(record: r.CriteriaMeasured) -> Notice:
    """The gate's criteria as a table of lines: measured, expected, verdict."""
    failed = [m for m in record.measurements if not m.passed and m.severity == "blocking"]
    rows = {lang: "\n".join(f"{m.criterion} ({m.title}) : {m.shown_value()} ; attendu {m.expected} ; "
                            f"{_VERDICTS[m.verdict()][0]}" if lang == "fr" else
                            f"{m.criterion} ({m.title}): {m.shown_value()}; expected {m.expected}; "
                            f"{_VERDICTS[m.verdict()][1]}" for m in record.measurements) for lang in ("fr", "en")}
    verdict_fr = f"{len(failed)} critère(s) bloquant(s) non conforme(s)" if failed else "critères bloquants conformes"
    verdict_en = f"{len(failed)} blocking criteria failed" if failed else "blocking criteria pass"
    return _run_notice("gate_criteria", record.step, f"Comité {record.step} : {verdict_fr}",
                       f"Go/no-go {record.step}: {verdict_en}", rows["fr"], rows["en"])


def window_at_risk(state: RunState, end_p90: datetime | None, window_end: datetime | None) -> Notice | None:
    """The forecast's P90 end is past the window: said once, by the caller, per drive."""
    if end_p90 is None or window_end is None or end_p90 <= window_end:
        return None
    late = int((end_p90 - window_end).total_seconds() // 60)
    later = next((w for w in state.windows if w.number > (state.window or 0)), None)  # the fallback night
    fallback_fr = f" Fenêtre de repli : n° {later.number}, à partir du {later.start}." if later else ""
    fallback_en = f" Fallback window: {later.number}, from {later.start}." if later else ""
    return _run_notice("window_at_risk", None, "Fenêtre de tir menacée", "Cutover window at risk",
                       f"Fin prévue (P90) {end_p90:%H:%M}, {late} min après la fin de la fenêtre ({window_end:%H:%M})."
                       + fallback_fr,
                       f"Forecast end (P90) {end_p90:%H:%M}, {late} min past the window's end ({window_end:%H:%M})."
                       + fallback_en)


def _run_notice(kind: str, step: str | None, title_fr: str, title_en: str, body_fr: str, body_en: str) -> Notice:
    return Notice(kind, step, None, {"fr": title_fr, "en": title_en}, {"fr": body_fr, "en": body_en})
