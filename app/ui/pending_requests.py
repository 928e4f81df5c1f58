"""Where a pending change request shows outside the Requests page: the overview's
banner and Request column, the flag detail's notice. A database that cannot be read
hides the markers, with a note where approval matters, and never breaks the page."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import streamlit as st

from app.approvals import ApprovalsUnavailable, ChangeRequest, RequestStatus
from app.rollout.roles import Identity
from app.runtime import Runtime
from app.services.requests import decision_text, pending_summary, stale_text
from app.text import escape_markdown

__all__ = [
    "REQUESTS_PAGE",
    "flag_request_notice",
    "pending_banner",
    "pending_in",
    "rejection_notice",
]

#: the page of change requests, for links
REQUESTS_PAGE = "../pages/requests.py"


def pending_in(rt: Runtime, environment: str) -> dict[str, ChangeRequest] | None:
    """Per flag of `environment`, its newest pending change request; None when nothing is
    pending (the overview then has no Request column) or the requests cannot be read."""
    try:
        pending = rt.approvals.pending_flags(environment)
    except ApprovalsUnavailable as error:
        if rt.approvals.needed_in(environment):
            st.caption(f"⏳ Pending change requests are not shown: {error}.")
        return None
    return pending or None


def pending_banner(pending: dict[str, ChangeRequest] | None, environment: str) -> None:
    """'⏳ 2 change requests wait for approval in production: …' with a link."""
    text = pending_summary(pending or {}, environment)
    if not text:
        return
    st.info(escape_markdown(text), icon="⏳")
    st.page_link(REQUESTS_PAGE, label="Open the Requests page", icon="✋")


def flag_request_notice(
    rt: Runtime, environment: str, flag: str, versions: Mapping[str, str] | None = None
) -> None:
    """On the flag detail: the flag's pending change request, linked; marked stale when
    the flag moved since it was asked (`versions`: the flags' versions now)."""
    pending = pending_in(rt, environment)
    change = (pending or {}).get(flag)
    if change is None:
        return
    stale = stale_text(change, versions) if versions is not None else ""
    if stale:
        st.warning(
            f"**Change request #{change.id}** by {escape_markdown(change.requester)} is "
            f"stale: {escape_markdown(stale)}",
            icon="🔁",
        )
    else:
        st.info(
            f"**Change request #{change.id}** by {escape_markdown(change.requester)} waits "
            f"for another operator's approval: {escape_markdown(change.diff)}. The flag "
            "stays as it is until someone approves it.",
            icon="⏳",
        )
    st.page_link(
        REQUESTS_PAGE,
        label=f"Change request #{change.id} on the Requests page",
        icon="✋",
        query_params={"id": change.id},
    )


def rejection_notice(
    rt: Runtime, identity: Identity, environment: str, flag: str | None = None
) -> None:
    """To the person who asked: their requests of `environment` (of `flag`, when given)
    rejected within the last request lifetime, each with who said no and why."""
    try:
        rejected = rt.approvals.requests(
            environment=environment, statuses=[RequestStatus.REJECTED], limit=50
        )
    except ApprovalsUnavailable:
        return  # the pending markers already say the requests cannot be read
    now = datetime.now(UTC)
    recent = now - timedelta(hours=rt.settings.request_expiry_hours)
    mine = [
        c
        for c in rejected
        if c.requester.lower() == identity.name.lower()
        and c.decided_at is not None
        and c.decided_at >= recent
        and (flag is None or flag in c.flags)
    ]
    for change in mine[:3]:
        said = escape_markdown(decision_text(change, now))
        st.warning(
            f"**Your change request #{change.id} was {said}.** "
            f"Nothing changed: {escape_markdown(change.diff)}.",
            icon="✖️",
        )
        st.page_link(
            REQUESTS_PAGE,
            label=f"Change request #{change.id} on the Requests page",
            icon="✋",
            query_params={"id": change.id},
        )
