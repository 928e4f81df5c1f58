"""A plan as an operator types it: steps, soak, hours; every mistake named in words."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.autopilot.model import (
    AllowedHours,
    PlanInvalid,
    PlanOptions,
    RolloutPlan,
    duration_text,
    parse_duration,
    parse_gates,
    parse_steps,
    plan_problems,
    plan_warnings,
)
from app.flags.model import FlagState
from app.rollout.guards import GuardName


@pytest.mark.parametrize(
    ("text", "seconds"), [("30m", 1800), ("45s", 45), ("1h30m", 5400), ("2h", 7200), ("1d", 86400)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "30", "thirty minutes", "5x", "-5m", "1e9s"])
def test_bad_durations_are_named(text: str) -> None:
    with pytest.raises(PlanInvalid, match="write it as 30m"):
        parse_duration(text)


def test_steps_and_their_problems() -> None:
    assert parse_steps("1, 5,25 ,50%") == (1.0, 5.0, 25.0, 50.0)
    with pytest.raises(PlanInvalid, match="write them as 1,5,25,50"):
        parse_steps("1,five")
    required = ("data_fresh", "error_rate", "soak_time")
    assert plan_problems((5.0, 1.0), timedelta(minutes=1), required, 50) == [
        "steps must rise, each once (1,5,25,50)"
    ]
    assert plan_problems((5.0,), timedelta(0), ("data_fresh", "exposure"), 50) == [
        "data_fresh, error_rate, soak_time are always gates: without them the autopilot "
        "would advance blind or unsoaked (missing: error_rate, soak_time)"
    ]
    problems = plan_problems((0.0, 150.0), timedelta(days=8), ("latency",), 120)
    assert "step 0 % is not above 0 %: a step must serve someone" in problems
    assert "step 150 % is above 100 %" in problems
    assert "the soak must be between 0 and 7 days" in problems
    assert any("unknown gates latency" in p for p in problems)
    assert any("within 0..100 %" in p for p in problems)
    assert plan_problems((), timedelta(0), required, 50) == ["a plan needs at least one step"]
    assert plan_problems((5.0, 150.0, 150.0, -1.0), timedelta(0), required, 50) == [
        "step 150 % is above 100 %",
        "step -1 % is not above 0 %: a step must serve someone",
    ]
    assert plan_problems((float("nan"),), timedelta(0), required, 50) == [
        "a step is not a number: every step must be above 0 and at most 100 %"
    ]


def test_a_soak_of_0_is_kept_but_said() -> None:
    quick = PlanOptions(steps=(5.0,), soak=timedelta(0))
    assert plan_warnings(quick) == [
        "soak 0 s: each step is taken at the first tick its other gates pass, with no time at "
        "the step to watch it (write 30m to soak each step for 30 minutes)"
    ]
    assert plan_warnings(PlanOptions(steps=(5.0,), soak=timedelta(seconds=1))) == []


def test_gates_as_typed_are_read_as_members() -> None:
    gates = parse_gates(["data_fresh", "canary", "data_fresh"])
    assert gates == {GuardName.DATA_FRESH, GuardName.CANARY}
    assert all(type(gate) is GuardName for gate in gates)
    with pytest.raises(PlanInvalid) as invalid:
        parse_gates(["error_rate", "vibes", "latency"])
    assert invalid.value.problems == (
        "unknown gates latency, vibes (known: data_fresh, error_rate, soak_time, "
        "dependencies, exposure, propagation, guardrail, canary)",
    )


def test_allowed_hours_in_a_named_zone() -> None:
    hours = AllowedHours.parse("mon-fri 09-17 Europe/Berlin")
    assert hours.text == "mon-fri 09:00-17:00 Europe/Berlin"
    assert AllowedHours.from_json(hours.as_json()) == hours
    assert hours.allows(datetime(2026, 12, 2, 8, 30, tzinfo=UTC))  # 09:30 in Berlin
    assert not hours.allows(datetime(2026, 12, 2, 7, 30, tzinfo=UTC))  # 08:30 in Berlin
    assert not hours.allows(datetime(2026, 12, 5, 10, 0, tzinfo=UTC))  # Saturday
    evenings = AllowedHours.parse("sat,sun 18:30-24")
    assert evenings.end == time(23, 59, 59, 999999)
    assert evenings.timezone == "UTC"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("weekdays", "write them as"),
        ("mon-fry 09-17", "unknown days"),
        ("mon-fri 17-09", "not a daytime span"),
        ("mon-fri 09-17 Mars/Olympus", "unknown time zone"),
    ],
)
def test_bad_hours_are_named(text: str, words: str) -> None:
    with pytest.raises(PlanInvalid, match=words):
        AllowedHours.parse(text)


def test_plan_steps_and_keys() -> None:
    plan = RolloutPlan(
        flag="f",
        environment="production",
        steps=(1.0, 5.0, 25.0),
        soak=timedelta(minutes=30),
        created_by="olga",
        created_at=datetime(2026, 12, 1, tzinfo=UTC),
        expected_state=FlagState.ROLLOUT,
        expected_percentage=5.0,
        actions_taken=2,
        id=9,
    )
    assert plan.next_step(5.0) == 25.0
    assert plan.next_step(25.0) is None
    assert plan.next_step(3.0) == 5.0  # a flag between steps goes to the next one
    assert plan.previous_step(25.0) == 5.0
    assert plan.previous_step(1.0) == 0.0
    assert plan.action_key("advance", 25.0) == "autopilot-9-3-advance-25"
    assert plan.text == "1 → 5 → 25 %, soak 30 min, on failure rollback, alone up to 50 %"


@given(st.integers(min_value=0, max_value=7 * 86400))
def test_duration_text_round_trips_through_parse(seconds: int) -> None:
    text = duration_text(timedelta(seconds=seconds))
    compact = text.replace(" min", "m").replace(" h", "h").replace(" s", "s").replace(" ", "")
    parsed = parse_duration(compact).total_seconds()
    assert parsed <= seconds and seconds - parsed < 60
