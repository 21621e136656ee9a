"""What the controller accepts as a signed approval, checked before any signature is (no ssh-keygen needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cutover.app.approvals import Override, SignedApproval, Statement, check_signed
from cutover.core.events import Event
from cutover.errors import InputError
from cutover.model.signers import signer_lines


def _event(seq: int, kind: str, step: str | None = None) -> Event:
    return Event(seq, "r1", kind, "2026-11-30T01:00:00+00:00", "claire", {"step": step} if step else {},
                 f"h{seq - 1}", f"h{seq}")


# the gate `go` opened at 2, the run rolled back, and it opened again at 5
EVENTS = [_event(1, "run_created"), _event(2, "gate_opened", "go"), _event(3, "rollback_started"),
          _event(4, "step_undone", "go"), _event(5, "gate_opened", "go"), _event(6, "run_paused", "go")]


def _signed(head: str, *, run: str = "r1", step: str = "go", approver: str = "cm-duty-1") -> SignedApproval:
    return SignedApproval(Statement(run, step, approver, "all green", "2026-11-30T01:00:00+00:00", head).text(),
                          "-----BEGIN SSH SIGNATURE-----\n-----END SSH SIGNATURE-----\n")


def _check(signed: SignedApproval, signers: Path) -> None:
    check_signed(signed, run_id="r1", step="go", approver_id="cm-duty-1", events=EVENTS, signers_file=signers)


@pytest.fixture
def signers(tmp_path: Path) -> Path:
    path = tmp_path / "allowed_signers"
    path.write_text("# approvers\ncm-duty-1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDP46Ty2AkJe claire\n")
    return path


@pytest.mark.parametrize("head", ["h2", "h4", "nowhere"])
def test_a_statement_signed_before_the_gate_last_opened_or_on_no_event_of_the_run_is_a_replay(signers, head):
    with pytest.raises(InputError, match="replay"):
        _check(_signed(head), signers)


@pytest.mark.parametrize("field", ["run", "step", "approver"])
def test_a_statement_for_another_run_gate_or_approver_is_a_replay(signers, field):
    with pytest.raises(InputError, match=f"for {field} .*replay"):
        _check(_signed("h6", **{field: "other"}), signers)


def test_a_statement_signed_since_the_gate_opened_goes_on_to_the_signature_check(signers):
    with pytest.raises(InputError, match="does not verify"):  # a dummy signature: only ssh-keygen can refuse it
        _check(_signed("h6"), signers)


def test_a_statement_not_in_canonical_form_is_refused(signers):
    signed = _signed("h6")
    with pytest.raises(InputError, match="canonical"):
        _check(SignedApproval(signed.statement.replace(",", ", "), signed.signature), signers)


def test_allowed_signers_errors_name_the_file_and_line(tmp_path):
    path = tmp_path / "allowed_signers"
    path.write_text("cm-duty-1 ssh-ed25519 AAAA ok\nClaire Martin ssh-ed25519 AAAA\n")
    with pytest.raises(InputError, match=r"allowed_signers, line 2: .Martin. is not an allowed-signers option"):
        signer_lines(path, "cm-duty-1")
    path.write_text("cm-duty-1 ssh-ed25519 AAAA ok\n")
    with pytest.raises(InputError, match="has no key"):
        signer_lines(path, "samu-med-1")


def _override(value: object, criterion: str = "load") -> SignedApproval:
    return SignedApproval(Statement("r1", "go", "cm-duty-1", "peak known", "2026-11-30T01:00:00+00:00", "h6",
                                    Override(criterion, value)).text(),
                          "-----BEGIN SSH SIGNATURE-----\n-----END SSH SIGNATURE-----\n")


def test_an_override_statement_is_neither_an_approval_nor_an_override_of_another_criterion_or_value(signers):
    with pytest.raises(InputError, match="is an override of load at 7, not an approval"):
        _check(_override(7), signers)
    with pytest.raises(InputError, match="is an approval, not an override"):
        check_signed(_signed("h6"), run_id="r1", step="go", approver_id="cm-duty-1", events=EVENTS,
                     signers_file=signers, override=Override("load", 7))
    for other in (_override(6), _override(7, "weather")):
        with pytest.raises(InputError, match="not an override of load at 7"):
            check_signed(other, run_id="r1", step="go", approver_id="cm-duty-1", events=EVENTS,
                         signers_file=signers, override=Override("load", 7))
    with pytest.raises(InputError, match="does not verify"):  # the right statement goes on to ssh-keygen
        check_signed(_override(7), run_id="r1", step="go", approver_id="cm-duty-1", events=EVENTS,
                     signers_file=signers, override=Override("load", 7))
    assert Statement.parse(_override(7).statement).override == Override("load", 7)
