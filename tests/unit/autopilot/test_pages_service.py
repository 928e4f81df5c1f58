"""What the pages say about a plan, with a fixed now: the timeline's states, the overview's
Autopilot cell, the heartbeat's words, and how a typed plan is read."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

import pytest

from app.autopilot.model import (
    AllowedHours,
    OnFailure,
    PlanInvalid,
    PlanOptions,
    PlanStatus,
    RolloutPlan,
)
from app.autopilot.store import AutopilotEvent, Heartbeat
from app.flags.model import FlagState
from app.rollout.guards import GuardName
from app.services.autopilot import (
    FlagAt,
    PlanForm,
    StepState,
    change_words,
    column_text,
    column_texts,
    event_rows,
    heartbeat_summary,
    newest_events,
    plan_timeline,
    read_plan_form,
    soak_progress,
)

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
ROLLOUT = FlagState.ROLLOUT


def plan(**changes: object) -> RolloutPlan:
    base = RolloutPlan(
        flag="new_checkout",
        environment="production",
        steps=(1.0, 5.0, 25.0, 50.0, 100.0),
        soak=timedelta(minutes=30),
        created_by="olga",
        created_at=NOW - timedelta(hours=3),
        expected_state=ROLLOUT,
        expected_percentage=5.0,
        last_decision="waited: soak 12 min of 30 min",
        version=4,
        id=7,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def event(kind: str, before: float, after: float, ago: timedelta, **more: object) -> AutopilotEvent:
    return AutopilotEvent(
        plan_id=7,
        at=NOW - ago,
        environment="production",
        flag="new_checkout",
        kind=kind,
        from_percentage=before,
        to_percentage=after,
        text=f"{kind} {before:g} % → {after:g} %",
        **more,  # type: ignore[arg-type]
    )


def states(timeline) -> list[tuple[float, StepState]]:
    return [(s.percentage, s.state) for s in timeline.steps]


# the timeline


def test_twelve_minutes_into_a_thirty_minute_soak_at_five_percent():
    timeline = plan_timeline(plan(), ROLLOUT, 5.0, NOW - timedelta(minutes=12), [], NOW)
    assert states(timeline) == [
        (1.0, StepState.DONE),
        (5.0, StepState.CURRENT),
        (25.0, StepState.NEXT),
        (50.0, StepState.LATER),
        (100.0, StepState.PERSON),
    ]
    assert timeline.current is not None and timeline.current.detail == "soak 12 of 30 min"
    assert timeline.steps[2].detail == "in 18 min if every gate passes"
    assert timeline.steps[4].detail == "the autopilot goes alone up to 50 %"
    assert [s.label for s in timeline.steps[:3]] == ["✅ 1 %", "▶️ 5 %", "⏭️ 25 %"]
    assert timeline.blocked == ""  # only the soak: counted down, not a block


def test_a_flag_between_steps_is_shown_where_it_is():
    timeline = plan_timeline(plan(), ROLLOUT, 10.0, NOW - timedelta(hours=2), [], NOW)
    assert states(timeline)[:4] == [
        (1.0, StepState.DONE),
        (5.0, StepState.DONE),
        (10.0, StepState.CURRENT),
        (25.0, StepState.NEXT),
    ]
    current = timeline.current
    assert current is not None and current.off_plan
    assert current.label == "▶️ 10 % (not a plan step)"
    assert current.detail == "soaked 30 min"
    assert timeline.steps[3].detail == "when every gate passes"


def test_a_disabled_flag_is_at_zero_and_an_unknown_arrival_has_soaked():
    timeline = plan_timeline(plan(), FlagState.DISABLED, 5.0, None, [], NOW)
    assert states(timeline)[:2] == [(0.0, StepState.CURRENT), (1.0, StepState.NEXT)]
    assert timeline.steps[0].detail == "soaked (at this step since before the history began)"


def test_a_paused_plan_after_a_rollback_says_why_and_marks_the_step_it_left():
    paused = plan(
        status=PlanStatus.PAUSED,
        status_by="autopilot",
        status_reason="rollback 25 % → 5 %: error_rate failed; a person resumes the plan",
        expected_percentage=5.0,
    )
    events = [
        event("rollback", 25, 5, timedelta(minutes=3)),
        event("advance", 5, 25, timedelta(hours=1)),
    ]
    timeline = plan_timeline(paused, ROLLOUT, 5.0, NOW - timedelta(minutes=3), events, NOW)
    assert timeline.blocked == (
        "paused: rollback 25 % → 5 %: error_rate failed; a person resumes the plan"
    )
    nxt = timeline.steps[2]
    assert (nxt.percentage, nxt.state) == (25.0, StepState.NEXT)
    assert nxt.detail == "not while the plan is paused; rolled back from here 3 min ago"
    assert timeline.current is not None and timeline.current.detail == "soak 3 of 30 min"


def test_a_wait_on_a_gate_is_the_block():
    waiting = plan(last_decision="waited: soak 40 min of 30 min; error_rate 1.40 % > 1 %")
    timeline = plan_timeline(waiting, ROLLOUT, 5.0, NOW - timedelta(minutes=40), [], NOW)
    assert timeline.blocked == "waited: soak 40 min of 30 min; error_rate 1.40 % > 1 %"


@pytest.mark.parametrize(
    ("soak", "elapsed", "words"),
    [
        (timedelta(seconds=45), timedelta(seconds=20), "soak 20 of 45 s"),
        (timedelta(hours=3), timedelta(minutes=90), "soak 1 h 30 min of 3 h"),
        (timedelta(0), timedelta(0), "no soak"),
        (timedelta(minutes=30), timedelta(minutes=31), "soaked 30 min"),
    ],
)
def test_soak_progress_words(soak, elapsed, words):
    assert soak_progress(soak, NOW - elapsed, NOW) == words


# the overview's cell


def test_the_next_step_and_when():
    text = column_text(plan(), ROLLOUT, 5.0, NOW - timedelta(minutes=18), NOW)
    assert text == "→ 25 % in 12 min"


def test_a_soaked_step_waiting_on_a_gate_says_what_it_waits_for():
    waiting = plan(last_decision="waited: no data (no evaluations in 5 min)")
    text = column_text(waiting, ROLLOUT, 5.0, NOW - timedelta(hours=1), NOW)
    assert text == "→ 25 %: no data (no evaluations in 5 min)"
    soaked = plan(last_decision="advance 1 % → 5 %: every gate passed, soaked 31 min")
    assert column_text(soaked, ROLLOUT, 5.0, NOW - timedelta(hours=1), NOW) == (
        "→ 25 % at the next tick"
    )


def test_holding_below_a_step_that_waits_for_a_person():
    at_fifty = plan(expected_percentage=50.0)
    assert column_text(at_fifty, ROLLOUT, 50.0, NOW - timedelta(hours=5), NOW) == (
        "holding at 50 %: 100 % waits for a person"
    )
    last = plan(steps=(1.0, 5.0, 25.0), expected_percentage=25.0)
    assert column_text(last, ROLLOUT, 25.0, None, NOW) == "holding at 25 %: the plan's last step"


def test_paused_by_a_person_and_by_the_autopilot():
    by_olga = plan(
        status=PlanStatus.PAUSED, status_by="olga", status_reason="paused by olga: lunch"
    )
    assert column_text(by_olga, ROLLOUT, 5.0, None, NOW) == "paused by olga: lunch"
    no_data = plan(
        status=PlanStatus.PAUSED,
        status_by="autopilot",
        status_reason="paused: no data for 10 ticks (no fresh data)",
    )
    assert column_text(no_data, ROLLOUT, 5.0, None, NOW) == (
        "paused: no data for 10 ticks (no fresh data)"
    )


def test_rolled_back_and_when():
    lowered = plan(
        status=PlanStatus.PAUSED,
        status_by="autopilot",
        status_reason="rollback 25 % → 5 %: error_rate failed; a person resumes the plan",
    )
    rollback = event("rollback", 25, 5, timedelta(minutes=3))
    assert column_text(lowered, ROLLOUT, 5.0, None, NOW, rollback) == (
        "rolled back 25 → 5 % 3 min ago (paused)"
    )
    killed = replace(lowered, expected_percentage=0.0, expected_state=FlagState.DISABLED)
    kill = event("kill", 25, 0, timedelta(seconds=40))
    killed_text = column_text(killed, FlagState.DISABLED, 0.0, None, NOW, kill)
    assert killed_text == "killed 25 → 0 % 40 s ago (paused)"
    # an older rollback does not explain a pause by a person since
    by_olga = plan(status=PlanStatus.PAUSED, status_by="olga", status_reason="paused by olga")
    assert column_text(by_olga, ROLLOUT, 5.0, None, NOW, rollback) == "paused by olga"


def test_the_cells_of_an_overview_from_one_read_of_plans_and_events():
    plans = [
        plan(),
        plan(flag="gone", id=8),  # not shown (filtered out): no cell
        plan(
            flag="search",
            id=9,
            status=PlanStatus.PAUSED,
            status_by="autopilot",
            expected_percentage=5.0,
        ),
    ]
    events = newest_events(
        [
            replace(event("rollback", 25, 5, timedelta(minutes=3)), plan_id=9),
            replace(event("advance", 5, 25, timedelta(minutes=30)), plan_id=9),
        ]
    )
    assert events[9].kind == "rollback"
    flags = {
        "new_checkout": FlagAt(ROLLOUT, 5.0, NOW - timedelta(minutes=18)),
        "search": FlagAt(ROLLOUT, 5.0, NOW - timedelta(minutes=3)),
    }
    assert column_texts(plans, flags, events, NOW) == {
        "new_checkout": "→ 25 % in 12 min",
        "search": "rolled back 25 → 5 % 3 min ago (paused)",
    }
    assert column_texts([plan(status=PlanStatus.ABORTED)], flags, {}, NOW) == {
        "new_checkout": "plan aborted"
    }


# the heartbeat


def beat(last_tick_ago: timedelta | None, *, expires_in: timedelta = timedelta(seconds=60)):
    return Heartbeat(
        holder="web-1:4242",
        acquired_at=NOW - timedelta(hours=1),
        expires_at=NOW + expires_in,
        last_tick_at=None if last_tick_ago is None else NOW - last_tick_ago,
        last_tick_seconds=0.2,
        interval_seconds=30.0,
        ticks=120,
    )


def test_a_live_leader_is_a_quiet_line():
    summary = heartbeat_summary(beat(timedelta(seconds=12)), NOW)
    assert not summary.dead
    assert summary.text == "autopilot: leader `web-1:4242`, last tick 12 s ago"
    late = heartbeat_summary(beat(timedelta(seconds=70)), NOW)
    assert not late.dead and late.text.endswith("last tick 70 s ago, 40 s late")


def test_a_silent_leader_is_a_warning():
    summary = heartbeat_summary(beat(timedelta(minutes=4), expires_in=-timedelta(minutes=2)), NOW)
    assert summary.dead
    assert summary.text.startswith(
        "the autopilot has not ticked for 4 min (last leader `web-1:4242`): plans are not "
        "being acted on"
    )
    assert "start `rollout-dashboard autopilot`" in summary.text


def test_no_controller_ever_ran():
    summary = heartbeat_summary(None, NOW)
    assert summary.dead
    assert summary.text == "no autopilot is running: start `rollout-dashboard autopilot`"
    assert heartbeat_summary(beat(None), NOW).dead


# events


def test_a_rollback_event_shows_its_time_to_mitigate():
    rollback = event(
        "rollback",
        25,
        5,
        timedelta(minutes=3),
        failure_seen_at=NOW - timedelta(minutes=3, seconds=42),
        audit_id="a1b2",
    )
    pause = event("pause", 5, 5, timedelta(minutes=1))
    rows = event_rows([pause, rollback], NOW)
    assert rows[0]["Event"] == "pause at 5 %" and rows[0]["Failing → acted"] == "–"
    assert rows[1] == {
        "When": "3 min ago",
        "Event": "rollback 25 → 5 %",
        "Why": "rollback 25 % → 5 %",
        "Failing → acted": "42 s later",
        "Audit record": "a1b2",
    }


# the typed plan


def form(**changes: object) -> PlanForm:
    base = PlanForm(
        steps="1,5,25,50",
        soak="30m",
        gates=("data_fresh", "error_rate", "soak_time"),
        on_failure=OnFailure.ROLLBACK,
        stop_at=50.0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_typed_plan_is_read():
    read = read_plan_form(form(steps="1, 5 %, 25", soak="1h30m", allowed_hours="mon-fri 09-17"))
    assert read.steps == (1.0, 5.0, 25.0)
    assert read.soak == timedelta(minutes=90)
    assert read.allowed_hours == AllowedHours(frozenset(range(5)), time(9), time(17), "UTC")


def test_a_typed_plan_is_read_as_the_options_of_set_plan():
    typed = form(gates=("soak_time", "data_fresh", "error_rate", "canary"), stop_at=25.0)
    assert read_plan_form(replace(typed, on_failure=OnFailure.KILL)) == PlanOptions(
        steps=(1.0, 5.0, 25.0, 50.0),
        soak=timedelta(minutes=30),
        gates=frozenset(
            {GuardName.DATA_FRESH, GuardName.ERROR_RATE, GuardName.SOAK_TIME, GuardName.CANARY}
        ),
        on_failure=OnFailure.KILL,
        stop_at=25.0,
    )
    gates = read_plan_form(typed).gates
    assert gates is not None and all(type(gate) is GuardName for gate in gates)


def test_every_bad_value_is_named_at_once():
    with pytest.raises(PlanInvalid) as invalid:
        read_plan_form(form(steps="50,25", soak="soon", allowed_hours="weekdays", stop_at=0.0))
    assert invalid.value.problems == (
        "soak 'soon': write it as 30m, 45s, 2h or 1h30m",
        "allowed hours 'weekdays': write them as 'mon-fri 09-17 Europe/Berlin'",
        "steps must rise, each once (1,5,25,50)",
        "the highest step the autopilot may take alone must be within 0..100 %",
    )
    with pytest.raises(PlanInvalid) as unreadable:
        read_plan_form(form(steps="one,two", gates=()))
    assert unreadable.value.problems == (
        "steps 'one,two': write them as 1,5,25,50",
        "data_fresh, error_rate, soak_time are always gates: without them the autopilot "
        "would advance blind or unsoaked (missing: data_fresh, error_rate, soak_time)",
    )


def test_a_plan_reads_back_as_the_form_it_came_from():
    kept = plan(
        soak=timedelta(hours=1, minutes=30),
        allowed_hours=AllowedHours(frozenset({0, 2}), time(9, 30), time(17), "Europe/Berlin"),
        on_failure=OnFailure.KILL,
    )
    typed = PlanForm.of(kept)
    assert (typed.steps, typed.soak, typed.allowed_hours) == (
        "1,5,25,50,100",
        "1h30m",
        "mon,wed 09:30-17:00 Europe/Berlin",
    )
    read = read_plan_form(typed)
    assert (read.steps, read.soak, read.allowed_hours) == (
        kept.steps,
        kept.soak,
        kept.allowed_hours,
    )
    assert PlanForm.of(plan(soak=timedelta(seconds=45))).soak == "45s"
    assert PlanForm.of(plan(soak=timedelta(0))).soak == "0s"


# what changed meanwhile


def test_a_tick_rewriting_its_last_decision_is_not_a_change():
    seen = plan()
    ticked = replace(seen, last_decision="waited: soak 13 min of 30 min", version=5)
    assert change_words(seen, ticked) is None


def test_a_change_by_someone_names_them():
    seen = plan()
    paused = replace(
        seen, status=PlanStatus.PAUSED, status_by="olga", status_reason="paused by olga: lunch"
    )
    assert change_words(seen, paused) == (
        "changed meanwhile by olga: the plan is now paused by olga: lunch"
    )
    moved = replace(seen, expected_percentage=25.0, version=5)
    assert change_words(seen, moved) == (
        "changed meanwhile by the autopilot: it moved the flag to 25 %"
    )
    replaced = replace(seen, created_by="ivan", created_at=NOW, steps=(5.0, 50.0), version=5)
    assert change_words(seen, replaced) == (
        "changed meanwhile by ivan: a new plan (5 → 50 %, soak 30 min, on failure rollback, "
        "alone up to 50 %), active"
    )
    assert change_words(None, seen) is not None and "a plan was set" in str(
        change_words(None, seen)
    )
    assert change_words(seen, None) == "the plan was removed meanwhile"
