"""What the plan editor and the plan buttons say after a person acts (issue 24): a step out
of range is named, a soak of 0 is said, a reason is used once."""

from __future__ import annotations

from app.autopilot.model import PlanStatus
from tests.integration.autopilot.test_autopilot_pages import (
    ENV,
    FLAG,
    field,
    fill,
    open_page,
    operator,
    parts,
    press,
    said,
    state,
)

__all__ = ["operator", "parts", "state"]  # fixtures used by name below


def test_a_step_above_100_is_named_with_its_value(state, operator, parts):
    at = open_page()
    fill(at, steps="10,50,150", soak="30m")
    press(at, "💾 Attach a rollout plan")
    [error] = said(at, "error")
    assert "- step 150 % is above 100 %" in error
    assert "every step must be" not in error
    fill(at, steps="0,50", soak="30m")
    press(at, "💾 Attach a rollout plan")
    assert "- step 0 % is not above 0 %: a step must serve someone" in said(at, "error")[0]
    assert parts.plans.get(ENV, FLAG) is None


def test_a_soak_of_0s_is_saved_and_said_where_the_person_clicked(state, operator, parts):
    at = open_page()
    fill(at, steps="10,25", soak="0s")
    press(at, "💾 Attach a rollout plan")
    assert said(at, "warning")[-1:] == [
        "Plan saved: 10 → 25 %, soak 0 s, on failure rollback, alone up to 50 %. The autopilot "
        "looks at it at its next tick. Note: soak 0 s: each step is taken at the first tick "
        "its other gates pass, with no time at the step to watch it (write 30m to soak each "
        "step for 30 minutes)."
    ]
    stored = parts.plans.get(ENV, FLAG)
    assert stored is not None and stored.soak.total_seconds() == 0


def test_the_pause_reason_is_not_reused_by_resume(state, operator, parts):
    parts.set_plan()
    at = open_page()
    at.text_input(key=field("reason")).set_value("lunch")
    press(at, "⏸️ Pause the plan")
    assert at.text_input(key=field("reason")).value == ""  # the box is empty again
    press(at, "▶️ Resume the plan")
    assert parts.plans.get(ENV, FLAG).status is PlanStatus.ACTIVE  # type: ignore[union-attr]
    reasons = {e.action: e.reason for e in parts.audit.entries(FLAG, environment=ENV)}
    assert reasons["plan_pause"] == "paused by local-operator: lunch"
    assert reasons["plan_resume"] == "resumed by local-operator"
