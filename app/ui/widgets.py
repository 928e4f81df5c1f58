"""Streamlit pieces every page shares: the process runtime, the source/age banner,
the identity label, the widgets whose values live in the link, and the page shown
instead of every page while the flag configuration cannot be read."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from app.analysis.emitter import emitter_notes, single_environment_note
from app.flags.loader import BUNDLED_CONFIG, ConfigInvalid
from app.quoting import printable
from app.rollout.inputs import MAX_NAME_LENGTH
from app.rollout.roles import Identity, Role, role_for
from app.runtime import Runtime, open_runtime
from app.services.overview import Overview, flag_count_text
from app.settings import (
    FlagBackendKind,
    Settings,
    SettingsInvalid,
    load_settings,
    redacted_url,
)
from app.sign_in import ProviderStatus, check_provider, missing_auth_settings, sign_in_origin
from app.text import code_span, escape_markdown, format_age, source_label
from app.ui.url_params import (
    MAX_TEXT,
    FromLink,
    choice_from_link,
    choices_from_link,
    text_from_link,
)
from queries.source import SourceUnavailable

__all__ = [
    "LinkedWidgets",
    "button_only_form",
    "config_problem_page",
    "current_identity",
    "emitter_caption",
    "environment_picker",
    "flag_source_banner",
    "flag_source_label",
    "identity_label",
    "outcome_message",
    "runtime",
    "settings_problem_page",
    "sign_in_controls",
    "source_banner",
]

T = TypeVar("T")


def button_only_form(key: str, *, border: bool = True) -> DeltaGenerator:
    """A form that submits only through a click on one of its buttons: Enter in one of its
    text boxes never approves, rejects or saves anything (Streamlit's default submits the
    form with its first button, so a rejection reason typed + Enter approved)."""
    return st.form(key, border=border, enter_to_submit=False)


def outcome_message(kind: str, text: str) -> None:
    """What a button did: "success" ✅, "note" ⚠️ (done, with something to know),
    "warning" 🔁 (someone changed it meanwhile), anything else an error ⛔."""
    if kind == "success":
        st.success(text, icon="✅")
    elif kind == "note":
        st.warning(text, icon="⚠️")
    elif kind == "warning":
        st.warning(text, icon="🔁")
    else:
        st.error(text, icon="⛔")


@st.cache_resource
def runtime() -> Runtime:
    """One runtime per server process, shared by every session; the process logs as
    ROLLOUT_LOG_FORMAT says (the database's outages among what it says)."""
    import logging

    from app.logs import configure_logging

    settings = load_settings()
    configure_logging(settings.log_format, logging.INFO)
    return open_runtime(settings)


def current_identity(rt: Runtime) -> Identity:
    """Who is looking: the labelled local operator in demo mode; the OIDC user with the
    role the mapping gives them when `[auth]` is configured; otherwise a read-only viewer."""
    settings = rt.settings
    if settings.demo:
        return Identity("local-operator", Role.OPERATOR, "demo")
    if _sign_in_configured() and _signed_in():
        name = str(st.user.get("email") or st.user.get("name") or "unknown")
        claimed = st.user.get("groups")
        groups: list[str] = [str(g) for g in claimed] if isinstance(claimed, list) else []
        return Identity(name, role_for(name, groups, settings.roles, settings.default_role), "oidc")
    return Identity("anonymous", Role.VIEWER, "anonymous")


def identity_label(rt: Runtime) -> str:
    """Who the sidebar says is looking, and with which role."""
    identity = current_identity(rt)
    if identity.via == "demo":
        return "👤 Local operator (demo mode — no sign-in)"
    if identity.via == "oidc":  # the name comes from the provider: shown as code, never linked
        name = printable(identity.name, limit=MAX_NAME_LENGTH)
        return f"👤 {code_span(name)} — **{identity.role}**"
    if _sign_in_configured():
        return "👁 Viewer — not signed in"
    return "👁 Read-only viewer (no sign-in configured)"


def flag_source_label(settings: Settings) -> str:
    """Where the sidebar says the flags are read from and written to."""
    if settings.flag_backend is FlagBackendKind.UNLEASH:
        where = redacted_url(settings.unleash_url or "")
        project = code_span(settings.unleash_project)
        return f"🏁 Flags: Unleash project {project} at {code_span(where)}"
    if settings.flag_backend is FlagBackendKind.SQL:
        return "🏁 Flags: the metrics database"
    return f"🏁 Flags: {code_span(str(settings.resolved_flags_file))}"


#: how long a check of the sign-in provider is trusted (every session of the process shares it)
PROVIDER_CHECK_SECONDS = 10


def sign_in_controls(rt: Runtime) -> None:
    """Log in / Log out in the sidebar when OIDC sign-in is configured. Instead of a Log in
    button that cannot work, says why: `[auth]` settings missing, the provider not answering
    (checked at most every `PROVIDER_CHECK_SECONDS`, and again on the click), or a page
    opened on another address than the one sign-in returns to. Never quotes a secret."""
    if rt.settings.demo or not _sign_in_configured():
        return
    if _signed_in():
        st.sidebar.button("Log out", on_click=st.logout)  # works with the provider down too
        return
    auth = _auth_settings()
    missing = missing_auth_settings(auth)
    if missing:
        st.sidebar.error(
            f"Sign-in is not set up: `[auth]` in `.streamlit/secrets.toml` lacks "
            f"{', '.join(missing)}. You can still watch; actions need sign-in.",
            icon="🔒",
        )
        return
    metadata_url = str(auth["server_metadata_url"])
    status = _provider_status(metadata_url)
    if not status.reachable:
        st.sidebar.warning(escape_markdown(status.message), icon="🔌")
        return
    origin = sign_in_origin(str(auth["redirect_uri"]))
    here = sign_in_origin(st.context.url or "")
    if origin is not None and here is not None and here != origin:
        st.sidebar.caption(
            f"Sign-in works only at {origin} (the address the provider returns to), not at {here}."
        )
        st.sidebar.link_button("Open it to log in", origin)
        return
    st.sidebar.button("Log in", on_click=_log_in, args=(metadata_url,))


@st.cache_data(ttl=PROVIDER_CHECK_SECONDS, show_spinner=False)
def _provider_status(metadata_url: str) -> ProviderStatus:
    return check_provider(metadata_url)


def _log_in(metadata_url: str) -> None:
    """Start the login only if the provider answers now: else the rerun says why, instead
    of Streamlit's bare "Authentication error" page."""
    _provider_status.clear()
    if check_provider(metadata_url).reachable:
        st.login()


def _auth_settings() -> dict[str, object]:
    auth = st.secrets.get("auth")
    return dict(auth) if isinstance(auth, Mapping) else {}


def _signed_in() -> bool:
    return bool(st.user.get("is_logged_in"))


def _sign_in_configured() -> bool:
    try:
        return "auth" in st.secrets
    except FileNotFoundError:
        return False


def source_banner(overview: Overview, stale_after_seconds: int, shown: int | None = None) -> None:
    """Where the numbers come from and how old they are, and how many of the flags the
    filters show (`shown`, None: all); loud when degraded."""
    age = overview.data_age_seconds
    label = source_label(overview.source)
    for notice in overview.notices:
        st.warning(notice, icon="⚠️")
    total = len(overview.rows)
    count = flag_count_text(total if shown is None else shown, total)
    text = f"Source: **{label}** · data age: **{format_age(age)}** · {count}"
    if age is None or age > stale_after_seconds:
        st.error(f"{text} — data is stale or missing", icon="⏱️")
    else:
        st.caption(text)


class LinkedWidgets:
    """The input widgets of one page whose values live in the link (query parameters).

    Each widget has a stable key (`<page>.<name>`). On the first run of a page visit (the
    key is not in session state yet) the link's value is validated and put into session
    state; from then on the widget owns its value and `sync()` writes the link from the
    widgets, never the other way round. A value the widget does not offer is dropped
    with a note `sync()` shows until the person picks another value in that widget.
    """

    def __init__(self, page: str) -> None:
        self.page = page
        self._to_link: dict[str, Callable[[], str]] = {}
        self._shown: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.page}.{name}"

    @property
    def _notes(self) -> dict[str, tuple[Any, tuple[str, ...]]]:
        """Per widget: the value it was given in place of what the link named, and why."""
        notes: dict[str, tuple[Any, tuple[str, ...]]] = st.session_state.setdefault(
            f"{self.page}.~notes", {}
        )
        return notes

    def _start(self, name: str, read: Callable[[list[str]], FromLink[Any]]) -> str:
        """Seed the widget `name` from the link on the first run of a visit; its key."""
        key = self.key(name)
        if key not in st.session_state:
            start = read(st.query_params.get_all(name))
            st.session_state[key] = start.value
            self._notes[name] = (start.value, start.ignored)
        return key

    def _note(self, name: str, note: str) -> None:
        """Add `note` to the widget `name`, whose value was just reset."""
        earlier = self._notes.get(name, (None, ()))[1]
        self._notes[name] = (st.session_state[self.key(name)], (*earlier, note))

    def selectbox(
        self,
        where: DeltaGenerator,
        label: str,
        name: str,
        options: Sequence[T],
        *,
        default: T | None,
        missing: Callable[[str], str] | None = None,
        format_func: Callable[[Any], str] = str,
    ) -> T | None:
        """A select box on `options` starting at the link's `name`, else at `default`.

        With `missing`, a value that names nothing offered (in the link, or after the
        options changed) leaves the box empty (None) with the note `missing(value)`, so
        the page never shows another item than the one named; without it, the box
        starts at `default` with a note."""

        def read(raw: list[str]) -> FromLink[T | None]:
            start = choice_from_link(name, raw, options, default)
            if missing is None or not raw or any(v in map(str, options) for v in raw):
                return start
            return FromLink(None, (missing(printable(raw[-1])),))

        key = self._start(name, read)
        current = st.session_state[key]
        if current is not None and current not in options:
            quoted = printable(str(current))
            st.session_state[key] = None if missing else default
            self._note(name, missing(quoted) if missing else f"{name}={quoted}: not offered")
        self._to_link[name] = lambda: _link_text(st.session_state[key])
        return where.selectbox(
            label, options, key=key, format_func=format_func, placeholder=f"Choose {label.lower()}"
        )

    def radio(
        self, where: DeltaGenerator, label: str, name: str, options: Sequence[T], *, default: T
    ) -> T:
        """Horizontal radio buttons on `options`, starting at the link's `name` or `default`."""
        key = self._start(name, lambda raw: choice_from_link(name, raw, options, default))
        if st.session_state[key] not in options:
            st.session_state[key] = default
        self._to_link[name] = lambda: str(st.session_state[key])
        chosen: T = where.radio(label, options, key=key, horizontal=True)
        return chosen

    def multiselect(
        self,
        where: DeltaGenerator,
        label: str,
        name: str,
        options: Sequence[T],
        *,
        format_func: Callable[[Any], str] = str,
    ) -> list[T]:
        """A multiselect on `options` starting at the link's comma-separated `name`."""
        key = self._start(name, lambda raw: choices_from_link(name, raw, options))
        st.session_state[key] = [v for v in st.session_state[key] if v in options]
        self._to_link[name] = lambda: ",".join(str(v) for v in st.session_state[key])
        return where.multiselect(label, options, key=key, format_func=format_func)

    def text_input(
        self, where: DeltaGenerator, label: str, name: str, *, placeholder: str | None = None
    ) -> str:
        """A text box (at most `MAX_TEXT` characters) starting at the link's `name`."""
        key = self._start(name, lambda raw: text_from_link(name, raw))
        self._to_link[name] = lambda: str(st.session_state[key])
        return where.text_input(label, key=key, max_chars=MAX_TEXT, placeholder=placeholder)

    def sync(self) -> None:
        """Write the link from the widgets so far (other parameters are kept; empty
        values are removed), and show each note not yet shown in this run whose widget
        still holds the value it was given in place of the link's."""
        for name, text in self._to_link.items():
            value = text()
            if not value:
                if name in st.query_params:
                    del st.query_params[name]
            elif st.query_params.get_all(name) != [value]:
                st.query_params[name] = value
        for name, (given, notes) in list(self._notes.items()):
            if name not in self._to_link or name in self._shown:
                continue
            if st.session_state[self.key(name)] != given:
                del self._notes[name]  # the person chose since: the link is history
                continue
            self._shown.add(name)
            for note in notes:
                st.warning(f"Ignored from the link: {escape_markdown(note)}", icon="🔗")


def _link_text(value: object) -> str:
    return "" if value is None else str(value)


def environment_picker(widgets: LinkedWidgets, rt: Runtime, where: DeltaGenerator) -> str:
    """The environment select box every page shows (`env` in the link); the settings'
    environment first and by default."""
    environments = rt.environments()
    names = rt.settings.metric_names
    if rt.settings.prometheus_url is not None and names.single_environment:
        # the metrics cannot tell environments apart: only the one they are counted as
        environments = environments[:1]
    chosen = widgets.selectbox(where, "Environment", "env", environments, default=environments[0])
    note = single_environment_note(names, environments[0])
    if note and rt.settings.prometheus_url is not None:
        st.caption(note)  # full width, under the row of filters
    return chosen if chosen is not None else environments[0]


def emitter_caption(rt: Runtime) -> None:
    """What the Prometheus emitter's metrics cannot tell, one line each (nothing for the
    seed's names, or without Prometheus)."""
    if rt.settings.prometheus_url is None:
        return
    notes = emitter_notes(rt.settings.metric_names, rt.guard_policy.pass_without_evidence)
    if notes:
        st.caption(" · ".join(notes))


def settings_problem_page(error: SettingsInvalid) -> None:
    """What every page shows while a setting is invalid: each `ROLLOUT_*` variable and
    why (a secret's value is never quoted), and that nothing was read or written."""
    st.title("🚦 Rollout Dashboard cannot start: invalid settings")
    st.error(f"{len(error.problems)} setting(s) cannot be used.", icon="⚙️")
    st.code("\n".join(error.problems), language=None)
    st.markdown(
        "Fix these environment variables (or the `[rollout]` table of "
        "`.streamlit/secrets.toml`) and restart the dashboard. Nothing was read or written."
    )


def flag_source_banner(
    settings: Settings,
    error: SourceUnavailable,
    *,
    page_stopped: bool = False,
    shown: bool = False,
) -> None:
    """What a page shows while the flag server does not answer: which one, why (never a
    token), that nothing was changed (unless `shown` already), and, when this page needs
    the flags, that it cannot be shown until the server answers again."""
    if not shown:
        st.error(
            f"**Flags unavailable**: {error}. Nothing was changed; the pages retry on the "
            "next refresh.",
            icon="🔌",
        )
    if page_stopped:
        where = settings.unleash_url or "the flag server"
        st.markdown(
            f"This page needs the flags from `{redacted_url(where)}`. The **Audit** page "
            "still works; the command line exits with code 4 while the server is down."
        )


def config_problem_page(settings: Settings, error: ConfigInvalid) -> None:
    """What a first deployment is told when the flag configuration is missing or invalid:
    the file looked for, the settings that point elsewhere, and each problem found."""
    path = settings.resolved_flags_file
    st.title("🚦 Rollout Dashboard needs a flag configuration")
    where = (
        f"`ROLLOUT_FLAGS_FILE` is set to `{settings.flags_file}`."
        if settings.flags_file is not None
        else f"`ROLLOUT_FLAGS_FILE` is not set, so it is `feature_flags.yaml` in the state "
        f"directory `ROLLOUT_STATE_DIR` (now `{settings.state_dir}`)."
    )
    if not path.is_file():
        st.error(f"No flag configuration file at `{path.resolve()}`.", icon="📄")
        st.markdown(
            f"The dashboard looked for it there because {where}\n\n"
            "To fix it, either:\n"
            f"- copy the bundled example there: `cp {BUNDLED_CONFIG} {path}`;\n"
            "- or point `ROLLOUT_FLAGS_FILE` at your flag file (or `ROLLOUT_STATE_DIR` at the "
            "directory that holds `feature_flags.yaml`) and restart;\n"
            "- or try everything locally with `rollout-dashboard demo`, which creates one.\n\n"
            "Then reload this page."
        )
        return
    st.error(
        f"The flag configuration `{path.resolve()}` (or an environment file beside it) is "
        f"invalid: {len(error.issues)} problem(s).",
        icon="📄",
    )
    st.markdown(f"It is read from there because {where}")
    st.code("\n".join(str(issue) for issue in error.issues), language=None)
    st.markdown(
        f"Fix the file (`rollout-dashboard check-config {path}` checks it) and reload this "
        "page. Nothing was changed."
    )
