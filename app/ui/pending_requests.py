"""Where a pending change request shows outside the Requests page: the overview's
banner and Request column, the flag detail's notice. A database that cannot be read
hides the markers, with a note where approval matters, and never breaks the page."""

from __future__ import annotations

import streamlit as st

from app.approvals import ApprovalsUnavailable, ChangeRequest
from app.runtime import Runtime
from app.services.requests import pending_summary
from app.text import escape_markdown

__all__ = ["REQUESTS_PAGE", "flag_request_notice", "pending_banner", "pending_in"]

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


def flag_request_notice(rt: Runtime, environment: str, flag: str) -> None:
    """On the flag detail: the flag's pending change request, linked."""
    pending = pending_in(rt, environment)
    change = (pending or {}).get(flag)
    if change is None:
        return
    st.info(
        f"**Change request #{change.id}** by {escape_markdown(change.requester)} waits for "
        f"another operator's approval: {escape_markdown(change.diff)}. The flag stays as it "
        "is until someone approves it.",
        icon="⏳",
    )
    st.page_link(
        REQUESTS_PAGE,
        label=f"Change request #{change.id} on the Requests page",
        icon="✋",
        query_params={"id": change.id},
    )
