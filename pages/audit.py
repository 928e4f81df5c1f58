"""Audit: every action with actor, time, from → to, reason, guards and outcome."""

import pandas as pd
import streamlit as st

from app.approvals.service import request_of_reason
from app.audit import AuditEntry, Outcome, action_groups
from app.quoting import printable
from app.text import escape_markdown
from app.ui.action_dialog import restorable, restore_button, show_last_outcome
from app.ui.deliveries import record_notifications
from app.ui.pending_requests import REQUESTS_PAGE
from app.ui.widgets import LinkedWidgets, current_identity, runtime

rt = runtime()
identity = current_identity(rt)
st.title("📜 Audit log")
show_last_outcome()
if not rt.audit.database_ok():
    st.warning("Metrics database unavailable: showing the records kept in the local journal.")
waiting = rt.audit.pending_in_journal()
if waiting:
    st.info(f"{waiting} journal line(s) wait to be replayed into the database.")

flag_col, actor_col, outcome_col = st.columns(3)
widgets = LinkedWidgets("audit")
flag = widgets.text_input(flag_col, "Flag", "flag")
actor = widgets.text_input(actor_col, "Actor", "actor")
outcomes = widgets.multiselect(outcome_col, "Outcome", "outcome", list(Outcome))
widgets.sync()
rows = rt.audit.entries(flag=flag or None, actor=actor, outcomes=outcomes, limit=5000)
groups = action_groups(rows)
wanted_id = st.query_params.get("id")


def _action_id(entry: AuditEntry) -> str:
    """'#9 · 5 flags' for each record of an emergency rollback, '#8' for one alone."""
    group = groups[entry.id]
    return f"#{group[0].id} · {len(group)} flags" if len(group) > 1 else f"#{entry.id}"


frame = pd.DataFrame(
    {
        "Id": [e.id for e in rows],
        "Action id": [_action_id(e) for e in rows],
        "At (UTC)": [e.at for e in rows],
        "Action": [str(e.action) for e in rows],
        "Flag": [e.flag for e in rows],
        "From": [e.from_text for e in rows],
        "To": [e.to_text for e in rows],
        "Outcome": [str(e.outcome) for e in rows],
        "Restore": [f"audit?id={groups[e.id][0].id}" if restorable(e) else None for e in rows],
        "Actor": [e.actor for e in rows],
        "Environment": [e.environment for e in rows],
        "Override": [e.override for e in rows],
        "Reason": [e.reason for e in rows],
        "Detail": [e.detail for e in rows],
        "Guards": [
            ", ".join(f"{g['name']} {'✓' if g['passed'] else '✗'}" for g in e.guards) for e in rows
        ],
    }
)
st.caption(
    f"{len(rows)} record(s), newest first · source: metrics database + local journal · "
    "select a row (or its ↩️ Restore) to see the record and restore what its action changed"
)
picked = st.dataframe(
    frame,
    hide_index=True,
    width="stretch",
    key="audit-table",
    on_select="rerun",
    selection_mode="single-row",
    column_config={
        "Restore": st.column_config.LinkColumn("Restore", display_text="↩️ Restore"),
    },
)
chosen = picked.selection.rows if picked is not None else []
if chosen and chosen[0] < len(rows):
    wanted_id = rows[chosen[0]].id
if wanted_id:
    record = rt.audit.get(wanted_id)
    if record is None:
        st.warning(f"No audit record #{escape_markdown(printable(wanted_id))}.")
    else:
        group = rt.audit.action_group(record)
        if len(group) > 1:
            st.success(
                f"Record {record.id} is one of the {len(group)} records of one "
                f"{record.action} by {escape_markdown(record.actor)} in {record.environment} "
                f"at {group[0].at:%Y-%m-%d %H:%M:%S} UTC (action #{group[0].id}): "
                f"restoring it restores all {len(group)} flags"
            )
            st.dataframe(
                pd.DataFrame(
                    {
                        "Id": [e.id for e in group],
                        "Flag": [e.flag for e in group],
                        "From": [e.from_text for e in group],
                        "To": [e.to_text for e in group],
                        "Outcome": [str(e.outcome) for e in group],
                    }
                ),
                hide_index=True,
                width="stretch",
            )
        else:
            st.success(
                f"Record {record.id}: {record.action} {record.flag} in {record.environment}, "
                f"{record.from_text} → {record.to_text} → {record.outcome}"
            )
        if record.detail:
            st.caption(record.detail)
        request_id = request_of_reason(record.reason)
        if request_id is not None:
            st.page_link(
                REQUESTS_PAGE,
                label=f"Change request #{request_id} on the Requests page",
                icon="✋",
                query_params={"id": request_id},
            )
        record_notifications(rt, record)
        restore_button(rt, identity, group[0], len(group))
        st.json(record.as_json(), expanded=False)
st.download_button(
    "Export CSV", frame.to_csv(index=False).encode(), file_name="rollout-audit.csv", mime="text/csv"
)
