"""Flag detail: one flag's configuration, the guard report for its next step, the
actions, and its history."""

import pandas as pd
import streamlit as st

from app.rollout.actions import Action, ActionRequest
from app.ui.actions import action_buttons, guard_table, show_last_outcome
from app.ui.widgets import current_identity, runtime

rt = runtime()
identity = current_identity(rt)
st.title("🔎 Flag detail")
show_last_outcome()

environments = rt.environments()
env_col, flag_col = st.columns([1, 3])
wanted_env = st.query_params.get("env", environments[0])
environment = env_col.selectbox(
    "Environment",
    environments,
    index=environments.index(wanted_env) if wanted_env in environments else 0,
)
snapshot = rt.backend.load(environment)
keys = sorted(snapshot.config.flags)
wanted_flag = st.query_params.get("flag", keys[0])
key = flag_col.selectbox("Flag", keys, index=keys.index(wanted_flag) if wanted_flag in keys else 0)
st.query_params.from_dict({"env": environment, "flag": key})
flag = snapshot.flag(key)

st.subheader(key)
st.caption(flag.metadata.description or "no description")
state_col, pct_col, phase_col, strategy_col = st.columns(4)
state_col.metric("State", str(flag.state))
pct_col.metric("Rollout", f"{flag.percentage:g} %")
phase_col.metric("Phase", str(flag.phase) if flag.phase else "–")
strategy_col.metric("Strategy", str(flag.rollout.strategy))

st.markdown("#### Actions")
action_buttons(rt, identity, environment, key, snapshot.versions)

st.markdown("#### Guard report for the next step")
try:
    preview = rt.plan(ActionRequest(Action.ADVANCE, environment, "(preview)", identity, flag=key))
except ValueError as error:
    st.info(f"No next step: {error}")
else:
    st.caption(" · ".join(t.diff for t in preview.transitions) + " — measured now")
    st.dataframe(guard_table(preview.guards), hide_index=True, width="stretch")

rules_col, deps_col = st.columns(2)
with rules_col:
    st.markdown("#### Targeting rules")
    if flag.targeting_rules:
        st.dataframe(
            pd.DataFrame(
                [(r.priority, r.name, r.condition, r.variant) for r in flag.ordered_rules],
                columns=["Priority", "Rule", "Condition", "Variant"],
            ),
            hide_index=True,
            width="stretch",
        )
    else:
        st.caption("None: every user goes through the rollout.")
with deps_col:
    st.markdown("#### Dependencies")
    if flag.metadata.dependencies:
        st.dataframe(
            pd.DataFrame(
                [
                    (d, f"{snapshot.config.flags[d].percentage:g} %")
                    for d in flag.metadata.dependencies
                ],
                columns=["Flag", "Rollout"],
            ),
            hide_index=True,
            width="stretch",
        )
    else:
        st.caption("None.")

st.markdown("#### History")
history = [e for e in rt.audit.entries(flag=key, limit=100) if e.environment == environment]
if history:
    st.dataframe(
        pd.DataFrame(
            [
                (
                    e.id,
                    e.at,
                    e.actor,
                    e.action,
                    f"{e.from_percentage:g} → {e.to_percentage:g} %",
                    str(e.outcome),
                    e.reason,
                )
                for e in history
            ],
            columns=["Audit", "At (UTC)", "Actor", "Action", "Change", "Outcome", "Reason"],
        ),
        hide_index=True,
        width="stretch",
    )
else:
    st.caption("No recorded change.")
st.info(
    "Coming next: charts of evaluations per variant, errors and latency, "
    "with the changes drawn on them."
)
