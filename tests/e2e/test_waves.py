"""The programme beyond wave 1, in the real lab: a night moves its wave and nothing else.

One lab for the whole module: four SAMUs in two waves (wave1: 01, 02;
wave2: 03, 04), traffic to all four throughout. The tests run in file
order and each starts where the previous one left the lab, as the nights of a
programme do: the wave-1 night, rollbacks of the wave-2 night from its
rollback points, then the wave-2 night. (make proof runs the programme of 100
SAMUs in ten waves.) After each, every SAMU of
the environment must still be taking calls, and nothing is lost, anywhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import browser
from tests.e2e.conftest import REPO
from tests.e2e.test_night import POINTS_BEFORE_PNR, Lab, assert_nothing_lost, calls, copy_project, sites

pytestmark = pytest.mark.e2e

WAVES = {"wave1": ("01", "02"), "wave2": ("03", "04")}


@pytest.fixture(scope="module")
def programme_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("waves")
    root = copy_project(tmp / "project")
    lab = Lab(root, tmp / "state")
    lab.env, lab.codes = str(lab.state / "lab" / "inventory"), ("01", "02", "03", "04")
    lab.cutover("lab", "up", "--samus", "4", "--waves", "2", "--rate", "2", check=0)
    try:
        yield lab
    finally:
        lab.cutover("lab", "down")


def night(lab: Lab, wave: str, run_id: str, *args: str):
    return lab.cutover("run", "bigbang", "--env", lab.env, "--param", f"wave={wave}", "--run-id", run_id,
                       "--auto-approve", "lab-bot", *args, timeout=300)


def expected(moved: set[str]) -> dict[str, tuple[str, str]]:
    """Every SAMU nominal: those of the moved waves on the cloud, the others on legacy."""
    return {code: ("nominal", "cloud" if wave in moved else "legacy") for wave, codes in WAVES.items()
            for code in codes}


def programme(lab: Lab) -> dict:
    return json.loads(lab.cutover("programme", "--env", lab.env, "--json", check=0).stdout)


def test_the_generated_lab_has_two_waves_and_traffic_to_every_samu(programme_lab: Lab):
    groups = {w["group"]: tuple(s["code"] for s in w["samus"]) for w in programme(programme_lab)["waves"]}
    assert groups == WAVES
    account = calls(programme_lab)
    assert set(account["samus"]) == {"01", "02", "03", "04"}


def test_the_wave1_night_moves_wave1_and_leaves_every_other_samu_taking_calls_on_legacy(programme_lab: Lab):
    lab = programme_lab
    result = night(lab, "wave1", "wave1-night", "--label", "vague 1")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert sites(lab) == expected({"wave1"})
    account = calls(lab)
    assert_nothing_lost(account)
    for code in ("03", "04"):  # answered by legacy throughout, never lost
        assert account["samus"][code]["answered"] > 0 and account["samus"][code]["lost"] == 0
    status = json.loads(lab.cutover("status", "wave1-night", "--json", check=0).stdout)
    assert status["params"] == {"wave": "wave1"} and status["wave"]["samus"] == ["samu-01", "samu-02"]


# make test rolls back from point-to-cloud, whose rollback undoes every step that acted (verify-cloud after it
# is read-only: nothing to undo); make proof, with --every-rollback-point, from each of the seven.
IN_MAKE_TEST = ("point-to-cloud",)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "point" in metafunc.fixturenames:
        every = metafunc.config.getoption("--every-rollback-point")
        metafunc.parametrize("point", [p for p in POINTS_BEFORE_PNR if every or p in IN_MAKE_TEST])


def test_rolling_back_the_wave2_night_from_each_point_leaves_wave1_on_the_cloud_and_the_rest_on_legacy(
        programme_lab: Lab, point: str):
    lab = programme_lab
    run_id = f"wave2-rb-{point}"
    result = night(lab, "wave2", run_id, "--until", point)
    assert result.returncode == 3, result.stdout[-3000:] + result.stderr
    rolled = lab.cutover("rollback", run_id, timeout=300)
    assert rolled.returncode == 5, rolled.stdout[-3000:] + rolled.stderr
    assert sites(lab) == expected({"wave1"})
    assert_nothing_lost(calls(lab))


def test_the_wave2_night_completes_the_programme_with_nothing_lost(programme_lab: Lab):
    lab = programme_lab
    result = night(lab, "wave2", "wave2-night", "--label", "vague 2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert sites(lab) == expected({"wave1", "wave2"})
    assert_nothing_lost(calls(lab))
    summary = programme(lab)
    assert (summary["migrated"], summary["total"]) == (4, 4)
    assert {s["run_id"] for w in summary["waves"] for s in w["samus"]} == {"wave1-night", "wave2-night"}
    runs = json.loads(lab.cutover("runs", "--json", check=0).stdout)
    assert {r["run_id"]: r["params"]["wave"] for r in runs}["wave2-night"] == "wave2"


def test_a_labelled_rehearsal_then_lab_reset_lets_the_night_be_rehearsed_again(programme_lab: Lab):
    """After the programme: a reset puts every SAMU back on legacy; a labelled rehearsal runs, and pauses."""
    lab = programme_lab
    assert lab.cutover("lab", "reset").returncode == 0
    assert sites(lab) == expected(set())  # every SAMU nominal on legacy again
    result = night(lab, "wave1", "again", "--label", "répétition 2", "--until", "preflight")
    assert result.returncode == 3, result.stdout[-3000:] + result.stderr
    runs = {r["run_id"]: r for r in json.loads(lab.cutover("runs", "--json", check=0).stdout)}
    assert runs["again"]["label"] == "répétition 2" and runs["again"]["kind"] == "rehearsal"
    assert runs["wave1-night"]["state"] == "completed"  # the journal was kept
    assert_nothing_lost(calls(lab))


# ---------------------------------------------------------------------- rehearsals teach the night


NIGHTS = ["wave1-night", "wave2-night"]


def test_timings_compare_and_forecast_come_from_the_measured_nights(programme_lab: Lab):
    lab = programme_lab
    data = json.loads(lab.cutover("timings", "bigbang", "--env", lab.env, "--json", check=0).stdout)
    assert {r["label"] for r in data["runs"]} >= {"vague 1", "vague 2", "répétition 2"}
    migrate = next(s for s in data["steps"] if s["id"] == "migrate")
    assert migrate["samples"] >= 3 and 0 < migrate["min_s"] <= migrate["p50_s"] <= migrate["p90_s"] <= migrate["max_s"]
    assert migrate["rollback"]["samples"] >= 1  # the wave-2 rollbacks measured the copy-back
    backup = next(s for s in data["steps"] if s["id"] == "backup-mode")
    assert {"samu-01", "samu-03", "samu-04"} <= set(backup["targets"])  # per target, so a slow SAMU shows

    compared = json.loads(lab.cutover("compare", *NIGHTS, "--json", check=0).stdout)
    assert [r["label"] for r in compared["runs"]] == ["vague 1", "vague 2"]
    row = next(s for s in compared["steps"] if s["id"] == "migrate")
    assert row["runs"][1]["delta_s"] == pytest.approx(row["runs"][1]["duration_s"] - row["runs"][0]["duration_s"],
                                                      abs=0.01)

    forecast = json.loads(lab.cutover("forecast", "bigbang", "--env", lab.env, "--param", "wave=wave2",
                                      "--window-end", "2099-01-01T06:00:00+01:00", "--json", check=0).stdout)
    # Every sample draws each step's duration from the measurements of the runs the forecast used (a gate
    # counts its expected duration, none here, never its measured wait): the band lies within the sums of
    # those steps' fastest and slowest measured times. (The nights' own totals are no bound: the runs were
    # measured under different loads, and each step is drawn on its own.)
    used = json.loads(lab.cutover("timings", "bigbang", "--env", lab.env, "--runs", ",".join(forecast["runs"]),
                                  "--json", check=0).stdout)["steps"]
    measured = [s for s in used if not s["gate"] and s["samples"]]
    fastest, slowest = sum(s["min_s"] for s in measured), sum(s["max_s"] for s in measured)
    band = forecast["duration_s"]
    assert set(NIGHTS) <= set(forecast["runs"]) and fastest > 0
    # the lower bound is loose: a fanned-out step's draw is its slowest target's, which can beat the step's own
    # wall time by the engine's overhead; the runbook's expected durations (hours) would be far outside both
    assert 0.5 * fastest <= band["p50"] <= band["p90"] <= 1.05 * slowest, (band, fastest, slowest)
    assert {s["id"]: s["source"] for s in forecast["steps"]}["migrate"].startswith("measured")
    assert set(forecast["backup_mode_s"]) == {"samu-03", "samu-04"} and forecast["pnr_deadline"]


def test_the_report_of_each_kind_of_night_opens_in_a_real_browser_with_nothing_fetched(programme_lab: Lab):
    lab = programme_lab
    rolled_back = "wave2-rb-point-to-cloud"  # rolled back in make test too (IN_MAKE_TEST)
    for run_id, state in (("wave2-night", "completed"), (rolled_back, "rolled_back"), ("again", "paused")):
        data = json.loads(lab.cutover("report", run_id, "--format", "json", "--out", "-", check=0).stdout)
        assert data["state"] == state and data["journal"]["verified"] and len(data["journal"]["head_hash"]) == 64
        assert data["calls"]["lost"] == 0  # the lab's account is in the record
    rolled = json.loads(lab.cutover("report", rolled_back, "--format", "json", "--out", "-", check=0).stdout)
    assert any(i["what"] == "rollback requested" for i in rolled["interventions"])
    html_path = lab.state / "wave2.html"
    lab.cutover("report", "wave2-night", "--out", str(html_path), check=0)
    markdown = lab.cutover("report", "wave2-night", "--format", "markdown", "--out", "-", check=0).stdout
    assert "Migrate the wave's data" in markdown and "head hash" in markdown
    errors, requests, text = open_in_browser(html_path, ARTIFACTS / "report-wave2.png")
    assert errors == [] and requests == [html_path.as_uri()], (errors, requests)
    status = json.loads(lab.cutover("status", "wave2-night", "--json", check=0).stdout)
    for needle in ["PV de recette", "vague 2", *{row["id"] for row in status["steps"]},
                   *(f"samu-0{n}" for n in range(1, 5))]:
        assert needle in text, needle


def test_bad_history_input_is_refused_with_exit_2_and_changes_nothing(programme_lab: Lab, tmp_path: Path):
    lab = programme_lab
    assert lab.cutover("report", "no-such-run").returncode == 2
    mixed = lab.cutover("timings", "bigbang", "--env", "lab", "--runs", "wave1-night")
    assert mixed.returncode == 2 and "not runs of" in mixed.stderr
    export = tmp_path / "wave1.jsonl"
    export.write_text(lab.cutover("runs", "export", "wave1-night", check=0).stdout)
    other = Lab(lab.root, tmp_path / "elsewhere")
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text(export.read_text().replace("vague 1", "vague 9"))
    garbled = tmp_path / "garbled.jsonl"
    garbled.write_text(export.read_text()[: len(export.read_text()) // 2])
    for bad in (tampered, garbled):
        refused = other.cutover("runs", "import", str(bad))
        assert refused.returncode == 2 and "nothing was imported" in refused.stderr, refused.stderr
        assert json.loads(other.cutover("runs", "--json", check=0).stdout) == []
    assert other.cutover("runs", "import", str(export)).returncode == 0
    moved = json.loads(other.cutover("timings", "bigbang", "--env", lab.env, "--json", check=0).stdout)
    assert [r["label"] for r in moved["runs"]] == ["vague 1"]
    assert other.cutover("journal", "verify").returncode == 0
    alone = json.loads(other.cutover("forecast", "bigbang", "--env", "lab", "--json", check=0).stdout)
    assert alone["runs"] == [] and alone["source"] == "expected durations" and not alone["spread_known"]
    assert {s["source"] for s in alone["steps"]} <= {"expected_duration", "none (0)", "waiting, not counted"}


ARTIFACTS = REPO / ".cutover" / "test-artifacts"


def open_in_browser(path: Path, screenshot: Path) -> tuple[list[str], list[str], str]:
    """Debian's chromium, headless, driven by Selenium (no browser download): errors, requests, text."""
    with browser.chromium(viewport=(1000, 1200)) as driver:
        driver.get(path.as_uri())
        browser.save_full_page(driver, screenshot)
        text = browser.text_of(driver, "body")
        requests = browser.requested(browser.network_events(driver))
        errors = browser.page_errors(driver)
    return errors, requests, text
