"""The autopilot on the pages, in Streamlit's AppTest on real parts: the bundled flag
files, a SQLite metrics database holding the roll-ups, the audit log and the plans, and
the real controller ticking on them. What is asserted is what the page shows."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from app.autopilot.model import PlanStatus
from app.autopilot.service import pause_plan
from app.metrics_db.database import open_database
from app.rollout.roles import Identity, NotAuthorized, Role
from tests.support.autopilot import GATES, AutopilotParts
from tests.support.bundled import copy_bundled_config

ENTRY_POINT = Path(__file__).resolve().parents[3] / "app" / "main.py"
ENV = "production"
FLAG = "phase1_config_externalization"  # rollout 10 %, no dependencies
VIC = Identity("vic", Role.VIEWER, "test")


def field(name: str) -> str:
    return f"autopilot.{name}.{ENV}.{FLAG}"


@pytest.fixture
def state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_rollout_environment
) -> Iterator[Path]:
    copy_bundled_config(tmp_path)
    open_database(f"sqlite:///{tmp_path / 'metrics.db'}").dispose()
    monkeypatch.setenv("ROLLOUT_STATE_DIR", str(tmp_path))
    st.cache_resource.clear()
    yield tmp_path
    st.cache_resource.clear()


@pytest.fixture
def operator(monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo's local operator (no sign-in)."""
    monkeypatch.setenv("ROLLOUT_DEMO", "true")


@pytest.fixture
def parts(state: Path) -> Iterator[AutopilotParts]:
    made = AutopilotParts(state, FLAG, ENV)
    yield made
    made.close()


def open_page(page: str = "flag_detail", **params: str) -> AppTest:
    at = AppTest.from_file(str(ENTRY_POINT), default_timeout=60)
    at.query_params.update({"flag": FLAG, "refresh": "off", **params})
    at.run()
    if page != "overview":
        at.switch_page(f"../pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def text(at: AppTest) -> str:
    """Everything the page wrote, as read (markdown escapes and bold removed)."""
    parts = [
        e.value
        for kind in ("markdown", "caption", "info", "success", "warning", "error")
        for e in getattr(at, kind)
    ]
    return "\n".join(str(p) for p in parts).replace("\\", "").replace("**", "")


def said(at: AppTest, kind: str) -> list[str]:
    return [str(e.value).replace("\\", "").replace("**", "") for e in getattr(at, kind)]


def labels(at: AppTest) -> list[str]:
    return [b.label for b in at.button]


def press(at: AppTest, label: str) -> AppTest:
    (button,) = [b for b in at.button if b.label == label]
    button.click().run()
    assert not at.exception, at.exception
    return at


def timeline(at: AppTest) -> list[tuple[str, str, str]]:
    frame = next(d.value for d in at.dataframe if "Step" in d.value.columns)
    return list(zip(frame["Step"], frame["Status"], frame["Detail"], strict=True))


def events(at: AppTest) -> list[dict[str, str]]:
    frame = next(d.value for d in at.dataframe if "Event" in d.value.columns)
    return frame.to_dict("records")


def fill(at: AppTest, **values: object) -> AppTest:
    for name, value in values.items():
        widget = at.multiselect if name == "gates" else at.text_input
        widget(key=field(f"form-{name}")).set_value(value)
    return at


# the plan editor


def test_an_operator_attaches_a_valid_plan(state, operator, parts):
    at = open_page()
    assert "No rollout plan: the flag moves only when a person moves it." in text(at)
    # the form starts from the config's ladder and every guard
    assert at.text_input(key=field("form-steps")).value == "1,5,10,25,50,100"
    assert at.text_input(key=field("form-soak")).value == "30m"
    assert at.multiselect(key=field("form-gates")).value == [
        "data_fresh",
        "error_rate",
        "soak_time",
        "dependencies",
        "exposure",
        "propagation",
        "guardrail",
    ]
    fill(
        at, steps="10,25,50,100", soak="20m", gates=list(GATES), hours="mon-fri 09-17 Europe/Berlin"
    )
    press(at, "💾 Attach a rollout plan")
    plan_text = (
        "10 → 25 → 50 → 100 %, soak 20 min, on failure rollback, alone up to 50 %, advances "
        "mon-fri 09:00-17:00 Europe/Berlin"
    )
    assert said(at, "success") == [
        f"Plan saved: {plan_text}. The autopilot looks at it at its next tick."
    ]
    stored = parts.plans.get(ENV, FLAG)
    assert stored is not None and stored.text == plan_text
    assert stored.created_by == "local-operator" and stored.status is PlanStatus.ACTIVE
    assert [e.action for e in parts.audit.entries(FLAG, environment=ENV)] == ["plan_set"]
    assert f"Plan: {plan_text}" in text(at)
    assert "Status: ▶️ active · latest: plan set: the next tick looks at it" in text(at)
    assert timeline(at) == [
        ("▶️ 10 %", "current", "soaked (at this step since before the history began)"),
        ("⏭️ 25 %", "next", "when every gate passes"),
        ("· 50 %", "later", ""),
        ("✋ 100 %", "waits for a person", "the autopilot goes alone up to 50 %"),
    ]
    assert "⏸️ Pause the plan" in labels(at) and "⏹️ Abort the plan…" in labels(at)
    assert "💾 Save the changed plan" in labels(at)  # the editor, to change it


def test_bad_values_are_named_under_the_form_and_nothing_is_stored(state, operator, parts):
    at = open_page()
    fill(at, steps="50,25", soak="soon", hours="weekdays 9-5")
    press(at, "💾 Attach a rollout plan")
    [error] = said(at, "error")
    assert error.startswith("The plan was not saved (nothing was written):")
    for problem in (
        "steps must rise, each once (1,5,25,50)",
        "soak 'soon': write it as 30m, 45s, 2h or 1h30m",
        "allowed hours: unknown days 'weekdays' (mon … sun)",
    ):
        assert problem in error
    assert parts.plans.get(ENV, FLAG) is None
    assert parts.audit.entries(FLAG, environment=ENV) == []
    # what was typed stays, to be corrected
    assert at.text_input(key=field("form-steps")).value == "50,25"
    fill(at, steps="10,x", soak="30m", hours="")
    press(at, "💾 Attach a rollout plan")
    assert "steps '10,x': write them as 1,5,25,50" in said(at, "error")[0]
    assert parts.plans.get(ENV, FLAG) is None


def test_a_viewer_sees_the_plan_but_cannot_change_it(state, parts):
    at = open_page()  # no sign-in configured, no demo: a read-only viewer
    assert "Attaching a plan needs the operator role." in text(at)
    assert not [b for b in labels(at) if "plan" in b]
    assert not at.text_input  # no form
    plan = parts.set_plan()
    at = open_page()
    assert "Plan: 10 → 25 → 50 → 100 %, soak 30 min" in text(at)
    assert "Pausing, resuming, aborting or changing the plan needs the operator role." in text(at)
    assert not [b for b in labels(at) if "plan" in b]
    assert not at.text_input
    # and the service refuses a viewer whatever the page shows
    with pytest.raises(NotAuthorized):
        parts.set_plan(VIC, steps=(25.0,))
    with pytest.raises(NotAuthorized):
        pause_plan(parts.plans, parts.audit, VIC, plan, "", datetime.now(UTC))
    assert parts.plans.get(ENV, FLAG) == plan


# the timeline after real ticks


def test_the_timeline_after_an_advance_and_a_rollback(state, operator, parts):
    parts.set_plan()
    parts.evaluations(0.10)
    ticker = parts.controller()
    assert ticker.tick().outcome(FLAG).decision.move == "advance"  # type: ignore[union-attr]
    at = open_page()
    assert timeline(at)[:3] == [
        ("✅ 10 %", "done", ""),
        ("▶️ 25 %", "current", "soak 0 of 30 min"),
        ("⏭️ 50 %", "next", "in 30 min if every gate passes"),
    ]
    [advance] = events(at)
    assert advance["Event"] == "advance 10 → 25 %" and advance["Failing → acted"] == "–"
    assert advance["Audit record"] == parts.audit.latest_applied(ENV, FLAG).id  # type: ignore[union-attr]
    assert any(c.value.startswith("🤖 autopilot: leader `ticker:1`") for c in at.caption)
    overview = open_page("overview")
    table = overview.dataframe[0].value
    cells = dict(
        zip([u.rsplit("flag=", 1)[1] for u in table["Flag"]], table["Autopilot"], strict=True)
    )
    assert cells[FLAG] == "→ 50 % in 30 min"
    assert set(cells.values()) == {"→ 50 % in 30 min", ""}  # only the planned flag

    parts.after_the_step()
    parts.evaluations(0.25, errors_on=2_000)  # the treatment fails at 25 %
    assert ticker.tick().outcome(FLAG).decision.move == "rollback"  # type: ignore[union-attr]
    at = open_page()
    [paused] = [w for w in said(at, "warning") if w.startswith("Paused")]
    assert paused.startswith("Paused: rollback 25 % → 10 %: error_rate failed: 10.00 % of 20000")
    assert paused.endswith("a person resumes the plan")
    current, following = timeline(at)[:2]
    assert current == ("▶️ 10 %", "current", "soak 0 of 30 min")
    # the page is drawn a second or so after the tick that rolled back (a wall clock)
    assert following[:2] == ("⏭️ 25 %", "next")
    assert re.fullmatch(
        r"not while the plan is paused; rolled back from here [01] s ago", following[2]
    )
    rollback, _ = events(at)
    assert rollback["Event"] == "rollback 25 → 10 %"
    assert rollback["Why"].startswith("rollback 25 % → 10 %: error_rate failed")
    assert rollback["Failing → acted"] == "in the same tick"
    assert "▶️ Resume the plan" in labels(at) and "⏸️ Pause the plan" not in labels(at)
    overview = open_page("overview")
    table = overview.dataframe[0].value.set_index("Flag")
    assert table["Autopilot"].str.startswith("rolled back 25 → 10 % ").sum() == 1


# pause, resume, abort


def test_pause_and_resume_from_the_page(state, operator, parts):
    parts.set_plan()
    at = open_page()
    at.text_input(key=field("reason")).set_value("lunch")
    press(at, "⏸️ Pause the plan")
    assert said(at, "success") == [
        "Plan paused. The autopilot leaves the flag at rollout 10 % until the plan is resumed."
    ]
    assert "Paused by local-operator: lunch" in said(at, "warning")
    assert parts.plans.get(ENV, FLAG).status is PlanStatus.PAUSED  # type: ignore[union-attr]
    press(at, "▶️ Resume the plan")
    assert said(at, "success") == [
        "Plan resumed. The autopilot goes on from rollout 10 % at its next tick."
    ]
    assert parts.plans.get(ENV, FLAG).status is PlanStatus.ACTIVE  # type: ignore[union-attr]
    actions = [e.action for e in parts.audit.entries(FLAG, environment=ENV)]
    assert actions == ["plan_resume", "plan_pause", "plan_set"]


def test_a_stale_tab_pausing_a_paused_plan_is_told_who_paused_it(state, operator, parts):
    parts.set_plan()
    first, second = open_page(), open_page()
    press(first, "⏸️ Pause the plan")
    version = parts.plans.get(ENV, FLAG).version  # type: ignore[union-attr]
    press(second, "⏸️ Pause the plan")
    assert said(second, "warning")[0] == (
        "Not paused: changed meanwhile by local-operator: the plan is now paused by "
        "local-operator. The page shows it now."
    )
    assert parts.plans.get(ENV, FLAG).version == version  # type: ignore[union-attr]
    assert "▶️ Resume the plan" in labels(second)  # the fresh plan


def test_a_tick_meanwhile_does_not_stop_a_pause(state, operator, parts):
    """A tick writes its last decision without moving the version the person saw: the
    person's Pause on the plan as seen applies."""
    parts.set_plan(soak=timedelta(0), gates=frozenset({"data_fresh", "error_rate", "soak_time"}))
    at = open_page()
    before = parts.plans.get(ENV, FLAG).version  # type: ignore[union-attr]
    parts.controller().tick()  # no data: "waited: no data (…)"
    noted = parts.plans.get(ENV, FLAG)
    assert noted is not None and noted.last_decision.startswith("waited: no data")
    assert noted.version == before
    press(at, "⏸️ Pause the plan")
    assert said(at, "success")[0].startswith("Plan paused.")
    assert parts.plans.get(ENV, FLAG).status is PlanStatus.PAUSED  # type: ignore[union-attr]


def test_abort_asks_first_then_leaves_the_flag_where_it_is(state, operator, parts):
    parts.set_plan()
    at = open_page()
    press(at, "⏹️ Abort the plan…")
    assert any(w.startswith("Abort the plan for good?") for w in said(at, "warning"))
    press(at, "Keep the plan")
    assert parts.plans.get(ENV, FLAG).status is PlanStatus.ACTIVE  # type: ignore[union-attr]
    assert not any(w.startswith("Abort the plan for good?") for w in said(at, "warning"))
    press(at, "⏹️ Abort the plan…")
    press(at, "Yes, abort the plan")
    assert said(at, "success") == [
        "Plan aborted. The flag stays at rollout 10 %; the autopilot will not touch it again."
    ]
    assert parts.plans.get(ENV, FLAG).status is PlanStatus.ABORTED  # type: ignore[union-attr]
    assert parts.backend.load(ENV).flag(FLAG).percentage == 10.0
    assert "💾 Set a new rollout plan" in labels(at)


def test_an_edit_of_a_plan_changed_meanwhile_never_overwrites_it(state, operator, parts):
    parts.set_plan()
    at = open_page()
    parts.set_plan(
        Identity("ivan", Role.OPERATOR, "test"), steps=(10.0, 50.0), seen_version=1
    )  # from a terminal, meanwhile
    fill(at, steps="10,20,30")
    press(at, "💾 Save the changed plan")
    [warning] = [w for w in said(at, "warning") if w.startswith("Not saved")]
    assert warning.startswith("Not saved: changed meanwhile by ivan: a new plan (10 → 50 %")
    assert "Nothing overwritten." in warning
    stored = parts.plans.get(ENV, FLAG)
    assert stored is not None and stored.steps == (10.0, 50.0)
    assert "Plan: 10 → 50 %, soak 30 min" in text(at)  # the fresh plan is shown


# the heartbeat


def test_active_plans_without_a_controller_are_a_warning(state, operator, parts):
    at = open_page("overview")
    assert not any("autopilot" in w.value for w in at.warning)  # no plan: nothing to say
    assert "Autopilot" not in at.dataframe[0].value.columns
    parts.set_plan()
    at = open_page("overview")
    assert said(at, "warning")[0] == (
        "No autopilot is running: start `rollout-dashboard autopilot`"
    )
    detail = open_page()
    assert said(detail, "warning")[0].startswith("No autopilot is running")
    parts.controller().tick()
    at = open_page("overview")
    assert not any("autopilot" in w for w in said(at, "warning"))
    assert any(
        c.value.startswith("🤖 autopilot: leader `ticker:1`, last tick ") for c in at.caption
    )


# what the plan would have done


def test_the_plan_is_replayed_over_the_last_day_from_the_page_and_nothing_changes(state, parts):
    """A viewer may ask too: the backtest writes nothing."""
    from app.metrics_db.database import insert_rollups
    from tests.support.backtest_history import poisson_rollups

    plan = parts.set_plan()
    now = datetime.now(UTC)
    insert_rollups(
        parts.engine,
        poisson_rollups(
            ENV, FLAG, now - timedelta(hours=25), now, lambda _at: (0.10, 0.005, 0.005), slot=60
        ),
    )
    at = open_page()
    assert "Replay the last 24 h" in labels(at)
    press(at, "Replay the last 24 h")
    frame = next(d.value for d in at.dataframe if "Decision" in d.value.columns)
    rows = frame.to_dict("records")
    advances = [r for r in rows if r["Decision"] == "advance"]
    assert [r["Why"].split(":")[0] for r in advances] == [
        "advance 10 % → 25 %",
        "advance 25 % → 50 %",
    ]
    assert rows[-1]["Decision"] == "hold" and "100 % waits for a person" in rows[-1]["Why"]
    assert "rollback" not in set(frame["Decision"])
    assert "10 → 25 → 50 → 100 %, soak 30 min" in text(at)
    assert "without a rollback, kill or pause" in text(at)
    assert parts.plans.get(ENV, FLAG) == plan  # the plan, the flag and the audit unchanged
    assert parts.backend.load(ENV).flag(FLAG).percentage == 10.0
    assert [e.action for e in parts.audit.entries(FLAG, environment=ENV)] == ["plan_set"]
