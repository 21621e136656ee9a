"""The board's words, in French (the room's language, the default) and English.

The vocabulary is the crisis room's own: bascule, mode secours, retour au nominal, point
de non-retour (PNR), retour arrière, répétition, comité go/no-go, vague,
fenêtre de tir, PV de recette. A page picks its language from ``?lang=`` first,
then the browser's Accept-Language, then French.
"""

from __future__ import annotations

from collections.abc import Mapping

LANGUAGES = ("fr", "en")
DEFAULT = "fr"

_WORDS: dict[str, tuple[str, str]] = {
    # page furniture (French puts a space before a colon and uses guillemets)
    "colon": ("\u00a0:", ":"),
    "lq": ("«\u00a0", "“"),
    "rq": ("\u00a0»", "”"),
    "title": ("Salle de crise — bascule", "Crisis room — cutover"),
    "runs": ("Bascules et répétitions", "Cutovers and rehearsals"),
    "no_runs": ("Aucune bascule dans ce journal.", "No run in this journal yet."),
    "read_only": ("Lecture seule : rien ne se modifie ici.", "Read-only: nothing is changed from here."),
    "other_lang": ("English", "Français"),
    "board": ("Tableau", "Board"),
    "report": ("PV de recette", "Sign-off record"),
    "api": ("JSON", "JSON"),
    "all_runs": ("Toutes les bascules", "All runs"),
    "live": ("en direct", "live"),
    "disconnected": ("connexion perdue, reconnexion…", "connection lost, reconnecting…"),
    # run columns and header
    "run": ("Bascule", "Run"),
    "label": ("Libellé", "Label"),
    "runbook": ("Runbook", "Runbook"),
    "env": ("Environnement", "Environment"),
    "kind": ("Nature", "Kind"),
    "state": ("État", "State"),
    "wave": ("Vague", "Wave"),
    "started": ("Début", "Started"),
    "finished": ("Fin", "Finished"),
    "elapsed": ("Écoulé", "Elapsed"),
    "window_end": ("Fin de la fenêtre de tir", "Cutover window ends"),
    "window_closed": ("fenêtre de tir close", "window closed"),
    "next_window": ("Fenêtre de repli", "Fallback window"),
    "predicted_end": ("Fin prévue", "Predicted end"),
    "pnr_deadline": ("Échéance du point de non-retour", "Point-of-no-return deadline"),
    "pnr_passed": ("Point de non-retour passé", "Point of no return passed"),
    "deadline_passed": ("échéance dépassée", "deadline passed"),
    "source": ("source", "source"),
    "unknown_durations": ("étapes de durée inconnue", "steps of unknown duration"),
    "rolling_back": ("retour arrière en cours", "rolling back"),
    "pause": ("En attente d'une décision", "Awaiting a decision"),
    "next": ("Pour continuer", "Next"),
    "steps": ("Étapes", "Steps"),
    # the grid
    "samus_by_steps": ("SAMU × étapes", "SAMUs × steps"),
    "target": ("SAMU / cible", "SAMU / target"),
    "controller": ("contrôleur", "controller"),
    "in_backup": ("En mode secours", "In backup mode"),
    "legend": ("Légende", "Legend"),
    # gates
    "gates": ("Comités go/no-go et point de non-retour", "Go/no-go gates and point of no return"),
    "gate_waiting": ("en attente d'approbation", "awaiting approval"),
    "gate_passed": ("franchi", "passed"),
    "gate_closed": ("pas encore ouvert", "not open yet"),
    "approvers": ("Approbateurs", "Approvers"),
    "quorum": ("quorum", "quorum"),
    "required_roles": ("rôles requis", "required roles"),
    "approved_by": ("Approuvé par", "Approved by"),
    "not_yet": ("pas encore", "not yet"),
    "auto": ("approbation automatique du labo", "lab auto-approval"),
    "signature": ("signature", "signature"),
    "signed": ("signée, vérifiée", "signed, verified"),
    "unsigned": ("non signée", "unsigned"),
    "pnr_gate": ("point de non-retour", "point of no return"),
    "no_gates": ("Aucun comité dans ce runbook.", "No gate in this runbook."),
    "criteria": ("Critères go/no-go", "Go/no-go criteria"),
    "measured_at": ("mesurés à", "measured at"),
    "criterion": ("Critère", "Criterion"),
    "measured": ("Mesuré", "Measured"),
    "expected": ("Attendu", "Expected"),
    "verdict": ("Verdict", "Verdict"),
    "verdict_pass": ("conforme", "pass"),
    "verdict_fail": ("NON CONFORME", "FAIL"),
    "verdict_warn": ("à surveiller", "warn"),
    "severity_blocking": ("bloquant", "blocking"),
    "severity_advisory": ("indicatif", "advisory"),
    "overridden_by": ("levé par", "overridden by"),
    # events and notifications
    "latest": ("Derniers événements", "Latest events"),
    "notifications": ("Notifications", "Notifications"),
    "notifications_sent": ("envoyées", "sent"),
    "failed_attempts": ("tentatives en échec", "failed attempts"),
    "undelivered": ("jamais remises", "never delivered"),
    "given_up": ("abandonnée, jamais remise", "given up, never delivered"),
    "retrying": ("nouvelle tentative prévue", "will be retried"),
    "stream_ended": ("fin du direct : la bascule est finie", "live view ended: the run is over"),
    "no_notification_failures": ("Aucun échec de notification.", "No notification failure."),
    "at": ("à", "at"),
    # errors and login
    "not_found": ("Introuvable", "Not found"),
    "unknown_run": ("Aucune bascule {run} dans ce journal.", "No run {run} in this journal."),
    "unknown_page": ("Cette page n'existe pas.", "There is no such page."),
    "server_error": ("Erreur interne du tableau ; le journal n'est pas touché.",
                     "Internal error of the board; the journal is untouched."),
    "broken_chain": ("La chaîne de hachage du journal est rompue : le tableau n'affiche plus cette bascule. "
                     "`cutover journal verify` nomme le premier événement altéré.",
                     "The journal's hash chain is broken: the board no longer shows this run. "
                     "`cutover journal verify` names the first bad event."),
    "login": ("Connexion au tableau", "Board sign-in"),
    "token": ("Jeton d'accès", "Access token"),
    "sign_in": ("Entrer", "Sign in"),
    "login_needed": ("Ce tableau demande le jeton d'accès remis par le chef de bascule.",
                     "This board needs the access token given by the change manager."),
    "login_refused": ("Jeton refusé.", "Token refused."),
}

_STATES: dict[str, tuple[str, str]] = {
    # a step x target
    "pending": ("en attente", "pending"),
    "running": ("en cours", "running"),
    "in_doubt": ("incertain", "in doubt"),
    "succeeded": ("réussi", "succeeded"),
    "failed": ("échec", "failed"),
    "rolled_back": ("annulé (retour arrière)", "rolled back"),
    "skipped": ("sauté", "skipped"),
    # a run
    "paused": ("en pause", "paused"),
    "completed": ("terminée", "completed"),
    "abandoned": ("abandonnée", "abandoned"),
    # kinds
    "rehearsal": ("répétition", "rehearsal"),
    "live": ("bascule réelle", "live"),
}

_EVENTS: dict[str, tuple[str, str]] = {
    "step_started": ("démarré", "started"),
    "step_succeeded": ("réussi", "succeeded"),
    "step_failed": ("ÉCHEC", "FAILED"),
    "step_skipped": ("sauté", "skipped"),
    "in_doubt": ("INCERTAIN", "IN DOUBT"),
    "gate_opened": ("comité ouvert, en attente d'approbation", "gate open, awaiting approval"),
    "gate_approved": ("approuvé", "approved"),
    "gate_passed": ("comité franchi", "gate passed"),
    "rollback_point": ("point de retour arrière", "rollback point"),
    "undo_started": ("retour arrière démarré", "rollback started"),
    "undo_succeeded": ("annulé", "rolled back"),
    "undo_failed": ("ÉCHEC DU RETOUR ARRIÈRE", "ROLLBACK FAILED"),
    "run_paused": ("bascule en pause", "run paused"),
    "run_failed": ("bascule en ÉCHEC", "run FAILED"),
    "run_completed": ("bascule terminée", "run completed"),
    "run_rolled_back": ("retour arrière terminé", "run rolled back"),
    "run_abandoned": ("bascule abandonnée (n'avait rien fait)", "run abandoned (it had acted on nothing)"),
    "run_postponed": ("bascule reportée à une fenêtre suivante", "run postponed to a later window"),
    "criteria_measured": ("critères mesurés", "criteria measured"),
    "criterion_overridden": ("critère levé (dérogation signée)", "criterion overridden"),
    "calls_counted": ("appels comptés (placés / perdus)", "calls counted (placed / lost)"),
}


def _index(lang: str) -> int:
    return LANGUAGES.index(lang) if lang in LANGUAGES else 0


def words(lang: str) -> dict[str, str]:
    """Every board phrase in ``lang`` (the templates read them as ``t.NAME``)."""
    i = _index(lang)
    return {key: pair[i] for key, pair in _WORDS.items()}


def state_word(value: str, lang: str) -> str:
    pair = _STATES.get(value)
    return pair[_index(lang)] if pair else value.replace("_", " ")


def event_word(kind: str, lang: str) -> str | None:
    """What an event means to the room, or None for bookkeeping (leases, heartbeats, outputs)."""
    pair = _EVENTS.get(kind)
    return pair[_index(lang)] if pair else None


def pick_language(query_lang: str | None, accept_language: str | None) -> str:
    """``?lang=`` when it names a language we have, else the browser's best, else French."""
    if query_lang in LANGUAGES:
        return str(query_lang)
    return _best_accepted(accept_language or "") or DEFAULT


def _best_accepted(header: str) -> str | None:
    ranked: list[tuple[float, int, str]] = []
    for order, item in enumerate(header.split(",")):
        tag, _, params = item.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in LANGUAGES:
            continue
        ranked.append((-_quality(params), order, primary))
    return min(ranked)[2] if ranked and min(ranked)[0] < 0 else None


def _quality(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.strip() == "q":
            try:
                return max(0.0, min(1.0, float(value)))
            except ValueError:
                return 0.0
    return 1.0


def translated(mapping: Mapping[str, tuple[str, str]], lang: str) -> dict[str, str]:
    i = _index(lang)
    return {key: pair[i] for key, pair in mapping.items()}


def state_words(lang: str) -> dict[str, str]:
    return translated(_STATES, lang)
