"""Each benchmark's core at a tiny size: it runs, its figures hang together, its result is kept."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from bench import bootstrap, burst, failover, fidelity, intake, latency, memory, webhooks
from bench.common import TABLE_START, percentile, refresh_table, write_result
from bench.fidelity_model import (
    CONNECTED,
    NO_CALL,
    ON_HOLD,
    RINGING,
    Workload,
    generate_calls,
    phone_events,
)
from tests.store_fixtures import NO_POSTGRES, POSTGRES_ENV


def test_percentile_is_nearest_rank() -> None:
    samples = [float(n) for n in range(1, 101)]
    assert percentile(samples, 0.5) == 50.0
    assert percentile(samples, 0.95) == 95.0
    assert percentile(samples, 1.0) == 100.0
    assert percentile([7.0], 0.99) == 7.0


def test_results_table_lists_every_result_with_its_machine(tmp_path: Path) -> None:
    write_result("alpha", {"x": 1}, summary="alpha did 1", directory=tmp_path)
    write_result("beta", {"x": 2}, summary="beta did 2", directory=tmp_path)
    (tmp_path / "README.md").write_text(
        (tmp_path / "README.md").read_text() + "\nnotes kept below the table\n"
    )
    write_result("alpha", {"x": 3}, summary="alpha did 3", directory=tmp_path)
    refresh_table(tmp_path)
    readme = (tmp_path / "README.md").read_text()
    assert readme.count(TABLE_START) == 1
    assert "alpha did 3" in readme
    assert "alpha did 1" not in readme
    assert "beta did 2" in readme
    assert "notes kept below the table" in readme
    assert "CPUs, Python" in readme
    record = json.loads((tmp_path / "alpha.json").read_text())
    assert record["x"] == 3
    assert record["machine"]["cpus"] >= 1


def test_bootstrap_reads_pages_where_the_baseline_reads_extensions(tmp_path: Path) -> None:
    result = bootstrap.main(["--people", "300", "--sample", "20"], directory=tmp_path)
    ours, base = result["ours"], result["baseline"]
    assert ours["presences_known"] >= 300
    assert not any("{id}" in key for key in ours["requests_by_endpoint"])
    assert base["sample_presences_known"] == 20
    assert base["extrapolated"] is True
    assert base["requests_by_group"]["light"] == base["presences_known"]
    assert ours["requests"] < base["requests"]
    assert ours["rate_limited_429"] == 0
    assert base["rate_limited_429"] == 0
    assert (tmp_path / "bootstrap.json").exists()


@pytest.mark.slow
def test_latency_times_every_event_to_its_slack_write(tmp_path: Path) -> None:
    tiny = "--people 200 --rates 40 --baseline-rate 20 --duration 0.5 --call-seconds 0.2"
    argv = [*tiny.split(), "--deadline", "20", "--configs", "lifted"]
    result = latency.main(argv, directory=tmp_path)
    assert result["configs"] == ["lifted"]
    assert "production" not in result
    lifted = result["lifted"]
    assert lifted["people_connected"] > 150
    for phase in [lifted["baseline"], *lifted["loads"]]:
        assert phase["call_starts"] == phase["call_ends"] > 0
        assert phase["events_logged"] == phase["events"]
        # None missing, except whole calls by design: one whose end the bot took in before
        # its start was written is written neither way (on a slow machine a 0.2 s call can
        # be). A start written without its end, or an end without its start, fails.
        assert phase["missing_start"] == phase["missing_end"]
        assert phase["missing_start"] < phase["call_starts"] / 4
        assert phase["still_showing_call_after_phase"] == 0
        assert phase["writes_matched"] == phase["events"] - phase["missing"] > 0
        assert phase["bot_transitions"] == phase["events"]
        assert phase["bot_events_not_taken_in_at_end"] == 0
        assert phase["bot_scheduler"]["rate_limited"] == 0
        assert phase["slack_profile_set_429s"] == 0
        assert phase["slack_profile_set_written"] == phase["writes_matched"]
        for prefix in ("", "start_", "end_", "taken_in_"):
            figures = [phase[f"{prefix}{p}_ms"] for p in ("p50", "p95", "p99", "max")]
            assert 0 < figures[0] <= figures[1] <= figures[2] <= figures[3]
        # A write cannot come before the bot took the event in.
        assert phase["taken_in_p50_ms"] <= phase["p50_ms"]
        assert phase["bot_rss_mib"] > 0
    assert set(lifted["ratio_p95"]) == {"40/s"}
    assert lifted["conditions"]["disabled"]["CALL_DEBOUNCE_SECONDS"].startswith("0 ")
    saved = (tmp_path / "latency.json").read_text()
    assert "xoxp-" not in saved
    assert "xoxb-" not in saved


@pytest.mark.slow
def test_latency_production_takes_every_event_in_within_slacks_budget(tmp_path: Path) -> None:
    # Calls must outlast the default 2 s call debounce, or nothing is written and the budget
    # is never tested; so must the phase, or its calls are cut short.
    tiny = "--people 100 --rates 40 --baseline-rate 20 --duration 2.2"
    argv = [*tiny.split(), "--production-call-seconds", "2.1", "--configs", "production"]
    result = latency.main([*argv, "--deadline", "20"], directory=tmp_path)
    assert "lifted" not in result
    production = result["production"]
    bot = production["conditions"]["bot"]
    assert bot["CALL_DEBOUNCE_SECONDS"] == 2.0
    assert bot["SLACK_PROFILE_WRITES_PER_MINUTE"] == 50
    for phase in [production["baseline"], *production["loads"]]:
        assert phase["call_starts"] == phase["call_ends"] > 0
        assert phase["events_logged"] == phase["events"]
        assert phase["bot_transitions"] == phase["events"]
        assert phase["bot_events_not_taken_in_at_end"] == 0
        assert phase["bot_all_taken_in_after_sending_stopped_seconds"] is not None
        assert phase["bot_writes_queued_at_end"] == 0
        # The budget was spent, Slack never refused, and Slack and the bot agree on it.
        assert phase["slack_profile_set_written"] > 0
        assert phase["slack_profile_set_429s"] == 0
        assert phase["slack_429s_other_methods"] == {}
        assert phase["bot_scheduler"]["rate_limited"] == 0
        # A write the writer skips when its turn comes (the call just ended) never reaches Slack.
        counted = phase["bot_scheduler"]
        assert phase["slack_profile_set_written"] == counted["writes"] - counted["skipped"]
        figures = [phase[f"taken_in_{p}_ms"] for p in ("p50", "p95", "p99", "max")]
        assert 0 < figures[0] <= figures[1] <= figures[2] <= figures[3]
    assert set(production["ratio_taken_in_p95"]) == {"40/s"}
    record = json.loads((tmp_path / "latency.json").read_text())
    assert "production budget: taken in p95" in record["summary"]
    assert record["summary"].endswith(", 0 429s")


def test_latency_summary_is_one_line_for_both_and_says_when_slack_refused() -> None:
    def phase(rate: float, taken_in_p95: float, refused: int = 0) -> dict[str, object]:
        return {
            "target_rate_per_second": rate,
            "taken_in_p95_ms": taken_in_p95,
            "bot_cpu_percent_of_one_core": rate / 10,
            "bot_events_not_taken_in_at_end": 0,
            "slack_profile_set_written": 40,
            "slack_profile_set_429s": refused,
        }

    production = {
        "baseline": phase(5, 2.0),
        "loads": [phase(50, 3.0), phase(500, 900.0, refused=2)],
        "ratio_taken_in_p95": {"50/s": 1.5, "500/s": 450.0},
    }
    summary = latency.summarise({"people": 10, "production": production})
    assert "\n" not in summary
    assert "taken in p95 3.0/900.0 ms at 50/500/s (x1.50/450 of 5/s)" in summary
    assert summary.endswith("2 429s (OVER BUDGET)")


def test_latency_matching_pairs_each_event_with_the_first_later_write() -> None:
    events = [("U1", 10.0, True), ("U1", 11.0, False), ("U2", 10.5, True), ("U2", 12.0, False)]
    writes = [
        ("U1", 10.2, True),
        ("U1", 10.9, True),  # a renewal: answers nothing
        ("U1", 11.3, False),
        ("U2", 12.5, False),  # U2's call was never shown; its end still was
    ]
    matched = latency.match_writes(events, writes)
    assert [round(x, 3) for x in matched.start] == [0.2]
    assert [round(x, 3) for x in sorted(matched.end)] == [0.3, 0.5]
    assert (matched.missing_start, matched.missing_end) == (1, 0)
    # A start answered only after the same person's next start was coalesced, not late.
    late = latency.match_writes(
        [("U3", 1.0, True), ("U3", 2.0, False), ("U3", 3.0, True)], [("U3", 3.5, True)]
    )
    assert late.start == [0.5]
    assert (late.missing_start, late.missing_end) == (1, 1)


@pytest.mark.slow
def test_burst_shows_everyone_within_slacks_budget_and_compares_with_the_floor(
    tmp_path: Path,
) -> None:
    result = burst.main(["--people", "60"], directory=tmp_path)
    assert result["people"] == 60
    assert result["taken_in"] == 60
    assert result["slack_profile_set_calls"] == result["bot_scheduler"]["writes"] == 60
    assert result["slack_profile_set_429s"] == 0
    assert result["bot_scheduler"]["rate_limited"] == 0
    bound = result["bound"]
    assert bound["seconds"] == bound["writes_seconds"] + bound["call_debounce_seconds"]
    # Nobody is shown before the call has lasted the debounce; the last no sooner than the first.
    assert bound["call_debounce_seconds"] <= result["first_shown_seconds"]
    assert result["first_shown_seconds"] <= result["all_shown_seconds"]
    # Both figures are rounded to 3 places on their own: compare within that rounding.
    ratio = result["all_shown_seconds"] / bound["seconds"]
    assert result["ratio_to_bound"] == pytest.approx(ratio, abs=2e-3)
    record = json.loads((tmp_path / "burst.json").read_text())
    assert record["summary"].endswith(", 0 429s")
    assert "the limits allow" in (tmp_path / "README.md").read_text()


def test_fidelity_reports_every_bridge(tmp_path: Path) -> None:
    result = fidelity.main(
        ["--people", "30", "--seeds", "1", "2", "--span", "600"], directory=tmp_path
    )
    assert set(result["results"]) == {"calls", "ringcentral"}
    (plain,) = result["results"]["calls"]
    (rung,) = result["results"]["ringcentral"]
    for size in (plain, rung):
        assert set(size["per_seed"]) == {"1", "2"}
        for bridge in fidelity.BRIDGES:
            figures = size["mean"][bridge]
            assert 0.0 <= figures["coverage"] <= 1.0
            assert figures["error_ratio"] >= 0.0
        assert size["mean"]["bound"]["writes"] <= size["mean"]["naive"]["writes"]
    # Rings, holds and missed calls change no one's on-call time, so they cannot change what a
    # bridge that ignores them achieves; a bridge writing once per event pays for each of them.
    assert rung["mean"]["ours"] == plain["mean"]["ours"]
    assert rung["mean"]["naive"]["writes"] > plain["mean"]["naive"]["writes"]
    assert "on RingCentral's events" in (tmp_path / "README.md").read_text()


def test_ringcentral_events_keep_the_calls_and_add_rings_holds_and_missed_rings() -> None:
    workload = Workload(people=200, seed=3, ringing=True)
    calls = generate_calls(workload)
    plain = phone_events(replace(workload, ringing=False), calls)
    rung = phone_events(workload, calls)
    assert {(at, key) for at, key, state in plain if state == CONNECTED} <= {
        (at, key) for at, key, state in rung if state == CONNECTED
    }
    kinds = Counter(state for _at, _key, state in rung)
    answered = sum(len(person) for person in calls.values())
    assert kinds[RINGING] > answered  # every answered call rings, and some rings go unanswered
    assert 0 < kinds[ON_HOLD] < answered
    for key, person in calls.items():
        # Between calls the phone is never on a call; within one it never rings.
        states = [(at, state) for at, who, state in rung if who == key]
        assert [at for at, _ in states] == sorted(at for at, _ in states)
        for start, end in person:
            inside = [state for at, state in states if start < at < end]
            assert RINGING not in inside
            assert NO_CALL not in inside


def test_memory_measures_a_fresh_interpreter(tmp_path: Path) -> None:
    result = memory.main(["--people", "200"], directory=tmp_path)
    (row,) = result["sizes"]
    assert row["presences"] == row["applied"] == row["linked"] >= 200
    # Links are held on top of presence, never instead of it.
    assert 0 < row["python_heap_bytes_per_person"] < row["linked_python_heap_bytes_per_person"]
    assert "B/person" in (tmp_path / "README.md").read_text()


@pytest.mark.slow
def test_webhooks_times_every_delivery_with_and_without_dead_receivers(tmp_path: Path) -> None:
    tiny = "--people 150 --rate 20 --duration 1 --call-seconds 0.3 --healthy 2 --gate 20"
    result = webhooks.main([*tiny.split(), "--hold-seconds", "0.5"], directory=tmp_path)
    run = result["sqlite"]
    for name, dead in (("without_dead", 0), ("with_dead", 2)):
        phase = run[name]
        assert phase["endpoints_dead"] == dead
        assert phase["call_starts"] == phase["call_ends"] > 0
        # Every change reached every healthy receiver once, signed, and was timed.
        assert phase["bot_transitions"] == phase["events_logged"] == phase["events"]
        assert phase["deliveries_matched"] == phase["deliveries_expected"] == 2 * phase["events"]
        assert phase["deliveries_missing_at_deadline"] == 0
        assert phase["signatures_verified"] == phase["deliveries_expected"]
        assert phase["bad_signatures"] == phase["duplicate_webhook_ids"] == 0
        assert phase["backlog_at_end"] == 0
        figures = [phase[f"{p}_ms"] for p in ("p50", "p95", "p99", "max")]
        assert 0 < figures[0] <= figures[1] <= figures[2] <= figures[3]
    # The dead receivers were tried, and failed, without holding up the healthy ones.
    assert run["with_dead"]["bot_failed_attempts"] > 0
    assert run["with_dead"]["hang_connections_accepted"] > 0
    assert run["without_dead"]["bot_failed_attempts"] == 0
    assert set(run["ratio_with_dead_to_without"]) == {"p50", "p95", "p99"}
    gate = run["gate"]
    assert gate["held_at_once"] == gate["requests"] == 20
    assert gate["answered_200"] == gate["answered_available"] == 20
    assert gate["bot_rss_mib_held"] > 0
    record = json.loads((tmp_path / "webhooks.json").read_text())
    assert "with 2 dead p50/p95/p99" in record["summary"]
    assert "whsec_" not in (tmp_path / "webhooks.json").read_text()


def test_intake_times_every_event_from_frame_to_decision_and_a_restart(tmp_path: Path) -> None:
    tiny = (
        "--people 80 --rates 60 --baseline 20 --seconds 2 --sizes --call-min 0.5 --call-max 1 "
        "--restart-calls 3"
    )
    result = intake.main(tiny.split(), directory=tmp_path)
    main = result["main"]
    for phase in (main["baseline"], *main["loads"]):
        # The bot read every event the simulator sent, and timed each one it fed the hub.
        assert phase["events_read_by_bot"] == phase["events_sent"] > 0
        assert phase["intake_lag_samples"] + phase["events_folded_by_bot"] == phase["events_sent"]
        figures = [phase[f"intake_lag_{p}_ms"] for p in ("p50", "p95", "p99")]
        assert 0 <= figures[0] <= figures[1] <= figures[2] <= phase["intake_lag_max_ms"]
        assert phase["slack_429s"] == {}
        assert phase["bot_cpu_us_per_event"] > 0
    kinds = main["loads"][0]["events_by_kind"]
    assert kinds.get("ring", 0) + kinds.get("queue_ring", 0) > 0
    restart = main["restart"]
    assert restart["first_correct_status_after_seconds"] is not None
    assert restart["all_correct_after_seconds"] is not None
    record = json.loads((tmp_path / "intake.json").read_text())
    assert "lag p99" in record["summary"]


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.skipif(not os.environ.get(POSTGRES_ENV), reason=NO_POSTGRES)
def test_failover_times_each_takeover_and_the_fence(tmp_path: Path) -> None:
    tiny = "--runs 1 --replicas 2 --people 4 --calls 1 --lease-seconds 2 --spacing 0"
    fence = "--fence-rounds 1 --fence-calls 3 --fence-batch 10"
    argv = [*tiny.split(), *fence.split(), "--postgres", os.environ[POSTGRES_ENV]]
    result = failover.main(argv, directory=tmp_path)
    for kind in ("kill", "term"):
        one = result[kind]
        assert one["runs"] == 1
        assert one["no_new_leader"] == one["never_served"] == 0
        (run,) = one["each"]
        # Another replica took over under a later epoch, and served once it led.
        assert run["new_leader"] != run["old_leader"]
        assert run["new_epoch"] > run["old_epoch"]
        assert run["leads_after_seconds"] <= run["serving_after_seconds"]
    assert result["kill"]["each"][0]["old_exit_code"] == -9
    assert result["term"]["each"][0]["old_exit_code"] == 0
    assert result["exit_codes_at_end"] == {"r0": 0, "r1": 0}
    for operation in ("save_presence", "update_preferences"):
        cost = result["fence"][operation]
        assert cost["plain_median_ms"] > 0
        assert cost["fenced_median_ms"] > 0
    record = json.loads((tmp_path / "failover.json").read_text())
    assert "SIGTERM x1" in record["summary"]
