"""`lab calls` accounting: it must be able to say "missing", "duplicated" and "pending"."""

from __future__ import annotations

import random

from cutover.lab.ledger import account_calls
from cutover.lab.tools import samulab


def _answered(lab: samulab.LabData, code: str, rng: random.Random, n: int = 1) -> list[str]:
    return [lab.call(code, caller="x", rng=rng).call_id for _ in range(n)]


def test_a_clean_run_is_ok(lab_dir, lab, rng):
    _answered(lab, "30", rng, 3)
    account = account_calls(lab_dir)
    assert (account.placed, account.answered, account.lost) == (3, 3, 0)
    assert account.ok
    assert set(account.to_json()) >= {"placed", "answered", "lost", "records_missing", "records_duplicated",
                                      "pending_in_backup"}


def test_records_on_legacy_are_missing_once_the_samu_ends_on_the_cloud_without_migration(lab_dir, lab, rng):
    _answered(lab, "30", rng, 2)
    samulab.point_at(lab.site("30"), lab.platforms, "cloud")
    account = account_calls(lab_dir)
    assert account.records_missing == 2 and not account.ok
    assert account.samus["30"].records_missing == 2
    samulab.migrate(lab.lab_dir, "legacy", "cloud", live=True)
    assert account_calls(lab_dir).records_missing == 0


def test_buffered_records_are_pending_in_backup_mode_and_missing_in_nominal(lab_dir, lab, rng):
    site = lab.site("30")
    samulab.set_mode(site, lab.platforms, "backup")
    _answered(lab, "30", rng, 2)
    account = account_calls(lab_dir)
    assert (account.pending_in_backup, account.records_missing) == (2, 0)
    # A careless return to nominal that skips the replay leaves them behind.
    site.execute("UPDATE site SET value = 'nominal' WHERE key = 'mode'")
    account = account_calls(lab_dir)
    assert (account.pending_in_backup, account.records_missing) == (0, 2)


def test_a_duplicated_intervention_is_reported(lab_dir, lab, rng):
    [call_id] = _answered(lab, "13", rng)
    legacy = lab.platform("legacy")
    # A replay that minted a new intervention id instead of reusing the buffered one.
    legacy.run("INSERT INTO interventions SELECT 'other-id', call_id, samu_code, kind, decided_at "
               f"FROM interventions WHERE call_id = {samulab.lit(call_id)}")
    account = account_calls(lab_dir)
    assert account.records_duplicated == 1 and account.examples["duplicated"] == [call_id]


def test_a_record_without_its_intervention_is_missing(lab_dir, lab, rng):
    [call_id] = _answered(lab, "2A", rng)
    lab.platform("legacy").run(f"DELETE FROM interventions WHERE call_id = {samulab.lit(call_id)}")
    assert account_calls(lab_dir).examples["missing"] == [call_id]


def test_lost_calls_are_counted_with_their_reason(lab_dir, lab, rng):
    samulab.set_frozen(lab.platform("legacy"), True, ["30"])
    _answered(lab, "30", rng, 2)
    account = account_calls(lab_dir)
    assert account.lost == 2 and dict(account.lost_reasons) == {"legacy platform partition 30 frozen": 2}
    assert account.records_missing == 0
