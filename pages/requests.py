"""Requests: the change requests of four-eyes approval. Waiting for you (others' pending
requests, with Approve and Reject), asked by you (with Cancel), recently decided; each
with its exact diff, reason, requester, age and expiry, and the guard report of request
time. Refreshing on its own, so a tab left open shows a new request."""

from datetime import UTC, datetime

import streamlit as st

from app.approvals import ApprovalsUnavailable, ChangeRequest, RequestStatus
from app.flags.loader import ConfigInvalid
from app.quoting import printable
from app.rollout.roles import Identity, Role
from app.services.requests import (
    RequestCard,
    approval_off_text,
    decision_notice,
    guards_at_request,
    requests_board,
)
from app.text import code_span, escape_markdown, format_duration
from app.ui.action_dialog import guard_table
from app.ui.widgets import button_only_form, current_identity, outcome_message, runtime

_DECISION = "requests.last-decision"
_ORDER = "requests.waiting-order"


rt = runtime()
identity = current_identity(rt)
settings = rt.settings
st.title("✋ Change requests")

needed = sorted(settings.approval_required_in)
if needed:
    st.caption(
        f"In {', '.join(needed)}, an advance, a restore that raises exposure or a guard "
        "override waits for a second operator; rollback, kill and emergency rollback never "
        f"wait. A request expires after {format_duration(settings.request_expiry_hours * 3600)}"
        "; the guards are checked again when it is approved."
    )
else:
    st.info(approval_off_text(rt.environments(), settings.demo), icon="ℹ️")
if identity.role.rank < Role.OPERATOR.rank:
    if identity.via == "oidc":
        st.info(f"You are a {identity.role}: deciding on a request needs the operator role.")
    else:
        st.info("Read-only: approving, rejecting or cancelling needs a signed-in operator.")


def remember(request_id: str, decide: str, *args: object) -> None:
    """Run one decision (a button's callback) and keep what it said, with the request it
    was about, for the next runs: shown in that request's card until dismissed."""
    comment = str(st.session_state.get(f"comment-{request_id}", ""))
    if decide == "approve":
        (digest,) = args
        decision = rt.approve(request_id, identity, comment, str(digest))
    elif decide == "reject":
        decision = rt.reject(request_id, identity, comment)
    else:
        decision = rt.cancel(request_id, identity)
    notice = decision_notice(decision)
    st.session_state[_DECISION] = (request_id, notice.kind, notice.text, datetime.now(UTC))


def show_decision(request_id: str) -> None:
    """In request `request_id`'s card: the outcome of the decision just made on it, with
    Dismiss."""
    said = st.session_state.get(_DECISION)
    if said is None or said[0] != request_id:
        return
    _, kind, text, at = said
    outcome_message(kind, f"{text} ({at:%H:%M:%S} UTC)")
    if st.button("Dismiss", key=f"dismiss-{request_id}"):
        st.session_state.pop(_DECISION, None)
        st.rerun(scope="fragment")


def decision_buttons(card: RequestCard, me: Identity) -> None:
    allowed = card.allowed
    if allowed.why_not and me.role.rank >= Role.OPERATOR.rank:
        st.caption(allowed.why_not)
    if allowed.approve or allowed.reject:
        with button_only_form(f"decide-{card.id}", border=False):
            st.text_input(
                "Comment (optional to approve, required to reject)",
                key=f"comment-{card.id}",
                max_chars=2000,
            )
            approve_col, reject_col, _ = st.columns([1, 1, 2])
            if allowed.approve:
                with approve_col:
                    st.form_submit_button(
                        f"✅ Approve #{card.id}",
                        type="primary",
                        on_click=remember,
                        args=(card.id, "approve", card.change.digest),
                    )
            if allowed.reject:
                with reject_col:
                    st.form_submit_button(
                        f"✖️ Reject #{card.id}", on_click=remember, args=(card.id, "reject")
                    )
    if allowed.cancel:
        st.button(
            f"↩️ Cancel request #{card.id}",
            key=f"cancel-{card.id}",
            on_click=remember,
            args=(card.id, "cancel"),
        )


def request_card(card: RequestCard, me: Identity, linked: bool) -> None:
    change = card.change
    with st.container(border=True):
        marker = "🔗 " if linked else ""
        st.markdown(f"{marker}**{escape_markdown(card.title)}** · {card.status}")
        st.code(change.diff, language=None)
        st.markdown(f"**Reason:** {escape_markdown(change.reason)}")
        asked = card.asked.removeprefix(change.requester)
        st.markdown(
            f"👤 {code_span(printable(change.requester, limit=200))}{escape_markdown(asked)}"
        )
        if card.decided:
            st.markdown(f"**Decision:** {escape_markdown(card.decided)}")
        if card.detail:
            st.warning(card.detail, icon="⚠️")
        if card.stale:
            st.warning(card.stale, icon="🔁")
        if change.override:
            st.caption(f"An override: only another admin can approve it ({admins_text()}).")
        guards = guards_at_request(change)
        if guards:
            verdict = (
                "all guards passed"
                if all(g.passed for g in guards)
                else "some guards FAILED (an override)"
            )
            pending = change.status is RequestStatus.PENDING
            with st.expander(f"Guard report at request time: {verdict}", expanded=pending):
                st.dataframe(guard_table(guards), hide_index=True, width="stretch")
        show_decision(card.id)
        decision_buttons(card, me)


def admins_text() -> str:
    """Who may approve an override: the admins of the role mapping, or that there is none."""
    admins = sorted(n for n, r in settings.roles.items() if r is Role.ADMIN)
    if not admins:
        return "no admin is configured (ROLLOUT_ROLES): nobody can approve it here"
    return "admins: " + ", ".join(escape_markdown(n) for n in admins)


def section(
    heading: str,
    cards: tuple[RequestCard, ...],
    empty: str,
    linked: str,
    count: int | None = None,
) -> None:
    """`count`: how many the heading says, when a card just decided is kept in place."""
    st.subheader(f"{heading} ({len(cards) if count is None else count})")
    if not cards:
        st.caption(empty if not count else "Shown above, where it was decided, until dismissed.")
    for card in cards:
        request_card(card, identity, card.id == linked)


def held_in_place(
    waiting: tuple[RequestCard, ...], every: tuple[RequestCard, ...]
) -> tuple[RequestCard, ...]:
    """The waiting list with the request just decided kept where it was (its outcome in
    its card until dismissed): the cards below do not move under the pointer."""
    said = st.session_state.get(_DECISION)
    before: list[str] = st.session_state.get(_ORDER, [])
    cards = list(waiting)
    if said is not None and said[0] in before and all(c.id != said[0] for c in cards):
        decided = next((c for c in every if c.id == said[0]), None)
        if decided is not None:
            cards.insert(min(before.index(said[0]), len(cards)), decided)
    st.session_state[_ORDER] = [c.id for c in cards]
    return tuple(cards)


def flag_versions(changes: list[ChangeRequest]) -> dict[str, dict[str, str]]:
    """The versions of the flags now, per environment with a pending request."""
    versions: dict[str, dict[str, str]] = {}
    for environment in {c.environment for c in changes if c.status is RequestStatus.PENDING}:
        try:
            versions[environment] = dict(rt.backend.load(environment).versions)
        except (ConfigInvalid, OSError, ValueError):
            continue  # unreadable flags: the request cannot say whether they changed
    return versions


@st.fragment(run_every=settings.refresh_seconds)
def board() -> None:
    try:
        changes = rt.approvals.requests()
    except ApprovalsUnavailable as error:
        st.error(
            f"Change requests cannot be shown: {error}. Rollback, kill and emergency "
            "rollback still work; an advance that needs approval cannot be requested "
            "until the database is back.",
            icon="🗄️",
        )
        return
    now = datetime.now(UTC)
    shown = requests_board(changes, identity, now, flag_versions(changes))
    linked = st.query_params.get("id", "").strip().lstrip("#")
    if linked and not any(c.id == linked for c in changes):
        st.warning(f"No change request #{escape_markdown(printable(linked))}.")
    st.caption(f"{len(changes)} request(s) in the metrics database · as of {now:%H:%M:%S} UTC")
    every = (*shown.waiting, *shown.mine, *shown.decided)
    waiting = held_in_place(shown.waiting, every)
    held = {c.id for c in waiting} - {c.id for c in shown.waiting}
    section(
        shown.waiting_heading,
        waiting,
        "Nothing waits for a decision."
        if identity.role.rank < Role.OPERATOR.rank
        else "Nothing waits for you.",
        linked,
        len(shown.waiting),
    )
    if identity.role.rank >= Role.OPERATOR.rank:
        section("Asked by you", shown.mine, "You have no pending request.", linked)
    decided = tuple(c for c in shown.decided if c.id not in held)
    section(
        "Recently decided",
        decided,
        "Nothing decided in the last 7 days.",
        linked,
        len(shown.decided),
    )


board()
