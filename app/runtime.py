"""What one dashboard or CLI process holds: settings, the database engine, the sources.

Opening never fails because a source is down: an unreachable database or Prometheus is
reported in `notices` and the rest keeps working.

The metrics stack (pandas, the PromQL client, the overview) is imported by the methods
that use it, not here: a rollback from the terminal never measures, and must not pay
seconds of imports for it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar, cast

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from app.analysis.health import HealthThresholds
from app.analysis.progress import PhaseProgress, phase_progress
from app.audit import AuditEntry, AuditLog
from app.errors import RolloutError
from app.evidence.windows import WindowPlan
from app.flags.backend import ExternalEdit, FlagBackend, FlagSnapshot
from app.flags.loader import ConfigInvalid, environments, load_config
from app.flags.model import FlagConfig, FlagState
from app.flags.sql_backend import SqlFlagBackend
from app.flags.yaml_backend import YamlFlagBackend
from app.guardrails import read_guardrails
from app.metrics_db.database import open_database
from app.quoting import quoted
from app.rollout.action_model import (
    ActionPlan,
    ActionRequest,
    ActionResult,
    EvidenceBefore,
    GuardCheck,
    InvalidRequest,
)
from app.rollout.evidence import gather_guard_inputs, guard_check
from app.rollout.execution import execute_action, unavailable_result
from app.rollout.exit_codes import ExitCode
from app.rollout.guards import GuardInputs, GuardPolicy, GuardResult
from app.rollout.planning import plan_action
from app.rollout.restore_evidence import evidence_before
from app.settings import EvidencePolicy, FlagBackendKind, Settings
from queries.source import SourceUnavailable

if TYPE_CHECKING:
    from app.approvals import Approvals, Decision
    from app.autopilot.backtest import Backtest
    from app.autopilot.controller import Controller
    from app.autopilot.model import PlanOptions, RolloutPlan
    from app.autopilot.store import AutopilotEvent, PlanStore
    from app.metrics_db.revisions import Migration
    from app.notify import Notifier
    from app.rollout.roles import Identity
    from app.services.overview import Overview
    from app.services.overview_cache import SharedOverviewCache
    from queries.prometheus import PrometheusMetrics
    from queries.sources import Sources

__all__ = ["EMPTY_SQL_BACKEND", "Runtime", "open_backend", "open_runtime", "seed_sql_flags"]

T = TypeVar("T")


@dataclass
class Runtime:
    settings: Settings
    engine: Engine | None
    backend: FlagBackend
    audit: AuditLog
    notices: list[str]
    #: a short-lived process (a terminal command): webhook deliveries are handed over to
    #: the autopilot instead of sent, so that exiting never waits for a receiver
    hand_over_notifications: bool = False
    _made: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def _once(self, name: str, make: Callable[[], T]) -> T:
        """`make()` on first use only, under a lock: viewers asking at once share one."""
        with self._lock:
            if name not in self._made:
                self._made[name] = make()
            return cast("T", self._made[name])

    @property
    def overview_cache(self) -> SharedOverviewCache:
        """Overviews shared by every viewer of this process, one per refresh interval."""
        return self._once("overview_cache", self._new_overview_cache)

    def _new_overview_cache(self) -> SharedOverviewCache:
        from app.services.overview_cache import SharedOverviewCache

        return SharedOverviewCache(self.settings.refresh_seconds)

    @property
    def prometheus(self) -> PrometheusMetrics | None:
        """The PromQL client the settings name (made on first use: it connects per query)."""
        return self._once("prometheus", self._new_prometheus)

    def _new_prometheus(self) -> PrometheusMetrics | None:
        s = self.settings
        if s.prometheus_url is None:
            return None
        from queries.prometheus import PrometheusMetrics

        return PrometheusMetrics(
            s.prometheus_url.get_secret_value(),
            s.metric_names,
            s.prometheus_timeout_seconds,
            s.prometheus_retries,
            recorded=s.use_recording_rules,
        )

    @property
    def guard_policy(self) -> GuardPolicy:
        s = self.settings
        guardrails, unreadable = read_guardrails(s.guardrails_file)
        return GuardPolicy(
            max_data_age_seconds=s.stale_after_seconds,
            max_error_rate=s.max_error_rate,
            min_soak=timedelta(minutes=s.min_soak_minutes),
            exposure_tolerance=s.exposure_tolerance,
            max_error_difference=s.max_error_difference,
            false_action_budget=s.false_action_budget,
            slots=WindowPlan(slot=s.evidence_slot_seconds),
            soak_window=timedelta(minutes=max(s.min_soak_minutes, 5)),
            pass_without_evidence=s.guard_without_evidence is EvidencePolicy.PASS,
            guardrails=guardrails,
            guardrails_unreadable=unreadable,
        )

    def guard_check(self) -> GuardCheck:
        """Measure and judge the guards of one flag; the sources are opened only when a
        guard is checked (an advance), never for a rollback."""

        def check(snapshot: FlagSnapshot, flag: str) -> list[GuardResult]:
            measure = guard_check(
                self.sources.metrics(), self.audit, self.guard_policy, lambda: datetime.now(UTC)
            )
            return measure(snapshot, flag)

        return check

    def judged(self, snapshot: FlagSnapshot, flag: str, at: datetime) -> GuardInputs:
        """What the guards of `flag` see at `at`, since its step began: the evidence
        Flag detail's panels show beside the guard report."""
        return gather_guard_inputs(
            self.sources.metrics(), self.audit, snapshot, flag, self.guard_policy, at
        )

    def preview(self, request: ActionRequest) -> ActionPlan:
        """The exact change and guard report of `request`; writes nothing. InvalidRequest
        for an environment that is not configured."""
        unknown = self._unknown_environment(request.environment)
        if unknown:
            raise InvalidRequest(unknown)
        return plan_action(
            request,
            self.backend,
            self.guard_check(),
            self.audit,
            undo_window=self.undo_window,
            evidence_before=self.evidence_before(),
        )

    @property
    def undo_window(self) -> timedelta:
        """How long after a change an operator may restore it without override."""
        return timedelta(hours=self.settings.undo_window_hours)

    def evidence_before(self) -> EvidenceBefore:
        """The guards of the state a restore puts back, over the window before the
        change it undoes; the sources are opened only when a restore is planned."""

        def judge(snapshot: FlagSnapshot, entry: AuditEntry) -> list[GuardResult]:
            measure = evidence_before(self.sources.metrics(), self.audit, self.guard_policy)
            return measure(snapshot, entry)

        return judge

    def execute(self, request: ActionRequest) -> ActionResult:
        """Authorise, audit and apply `request` (see `app.rollout.execution`); an
        environment that is not configured is refused (exit 2) before anything is written,
        so no override file is ever created for it. Where a second person must approve,
        the result carries the change request made instead (exit 5)."""
        try:
            unknown = self._unknown_environment(request.environment)
        except SourceUnavailable as error:  # the flag server is down: audited, exit 4
            return unavailable_result(request, self.audit, error)
        if unknown:
            return ActionResult(False, ExitCode.USAGE, None, error=unknown)
        result = execute_action(
            request,
            self.backend,
            self.audit,
            self.guard_check(),
            approvals=self.approvals,
            undo_window=self.undo_window,
            evidence_before=self.evidence_before(),
        )
        if self.settings.notify_manual_actions:  # queued: a webhook never delays the action
            from app.notify import manual_notifications

            for notification in manual_notifications(result, self.settings):
                self.notifier.notify(notification)
        return result

    @property
    def notifier(self) -> Notifier:
        """The webhooks of ROLLOUT_WEBHOOKS (`app.notify`), made once."""
        from app.notify import open_notifier

        return self._once(
            "notifier",
            lambda: open_notifier(
                self.settings, self.engine, hand_over=self.hand_over_notifications
            ),
        )

    @property
    def approvals(self) -> Approvals:
        """The change requests of this process's environments (`app.approvals`)."""
        return self._once("approvals", self._new_approvals)

    def _new_approvals(self) -> Approvals:
        from app.approvals import Approvals, RequestStore

        s = self.settings
        return Approvals(
            RequestStore(self.engine),
            self.audit,
            s.approval_required_in,
            timedelta(hours=s.request_expiry_hours),
        )

    def approve(
        self, request_id: str, identity: Identity, comment: str = "", digest: str | None = None
    ) -> Decision:
        """Approve a change request and apply it, guards checked again now."""
        return self.approvals.approve(request_id, identity, self.execute, comment, digest)

    def reject(self, request_id: str, identity: Identity, comment: str) -> Decision:
        return self.approvals.reject(request_id, identity, comment)

    def cancel(self, request_id: str, identity: Identity, comment: str = "") -> Decision:
        return self.approvals.cancel(request_id, identity, comment)

    @property
    def plans(self) -> PlanStore:
        """The rollout plans of this process's metrics database (`app.autopilot`)."""
        from app.autopilot.store import PlanStore

        return PlanStore(self.engine)

    def set_plan(
        self,
        identity: Identity,
        environment: str,
        flag: str,
        options: PlanOptions,
        *,
        seen_version: int = 0,
    ) -> RolloutPlan:
        """`app.autopilot.service.set_plan` on this process's plans, audit and flags, now,
        with the canary flag and the environment's approval rule from the settings."""
        from app.autopilot.service import set_plan

        return set_plan(
            self.plans,
            self.audit,
            identity,
            self.backend.load(environment),
            flag,
            options,
            now=datetime.now(UTC),
            seen_version=seen_version,
            canary_flag=self.settings.canary_flag,
            approval_required=environment in self.settings.approval_required_in,
        )

    def backtest(
        self,
        environment: str,
        flag: str,
        start: datetime,
        end: datetime,
        options: PlanOptions | None = None,
    ) -> Backtest:
        """What `options`' plan (None: the flag's stored plan) would have done from
        `start` to `end`, ticking as the autopilot is configured to (`app.autopilot.
        backtest`); writes nothing. PlanInvalid (no stored plan, a bad plan, an unknown
        flag), ValueError (a span that cannot be replayed), NoHistory, PlansUnavailable."""
        from app.autopilot.backtest import backtest_plan, run_backtest
        from app.autopilot.model import PlanInvalid
        from app.autopilot.service import default_gates

        snapshot = self.backend.load(environment)
        if options is None:
            stored = self.plans.get(environment, flag)
            if stored is None:
                raise PlanInvalid(
                    [
                        f"no rollout plan for {quoted(flag)} in {environment}: give one "
                        "(--steps and --soak at least)"
                    ]
                )
            plan = stored
        else:
            canary = self.settings.canary_flag
            chosen = default_gates(flag, canary) if options.gates is None else options.gates
            plan = backtest_plan(snapshot, flag, options, chosen)
        s = self.settings
        return run_backtest(
            self.sources.metrics(),
            self.audit,
            snapshot,
            plan,
            start,
            end,
            self.guard_policy,
            interval=timedelta(seconds=s.autopilot_interval_seconds),
            pause_after_ticks=s.autopilot_pause_after_ticks,
            window=timedelta(seconds=s.autopilot_window_seconds),
        )

    def autopilot(
        self,
        holder: str = "",
        on_event: Callable[[AutopilotEvent, RolloutPlan], None] | None = None,
    ) -> Controller:
        """An autopilot controller on this process's flags, audit and sources, as the
        settings configure it (`holder` names it in the lease)."""
        from app.autopilot.controller import Controller, ControllerConfig

        s = self.settings
        config = ControllerConfig(
            interval=timedelta(seconds=s.autopilot_interval_seconds),
            lease_period=timedelta(seconds=s.autopilot_lease_seconds),
            window=timedelta(seconds=s.autopilot_window_seconds),
            pause_after_ticks=s.autopilot_pause_after_ticks,
            policy=self.guard_policy,
            canary_flag=s.canary_flag,
        )
        return Controller(
            engine=self.engine,
            backend=self.backend,
            audit=self.audit,
            metrics=lambda: self.sources.metrics(),
            canary=lambda: self.sources.canary(),
            config=config,
            holder=holder,
            on_event=on_event or self._notify_autopilot,
        )

    def _notify_autopilot(self, event: AutopilotEvent, plan: RolloutPlan) -> None:
        """Every autopilot action and pause to the webhooks (in the background)."""
        from app.notify import autopilot_notification

        self.notifier.notify(autopilot_notification(event, plan, self.settings))

    def _unknown_environment(self, environment: str) -> str | None:
        if environment in self.environments():
            return None
        return f"unknown environment {quoted(environment)}"

    def is_applied(self, entry: AuditEntry) -> bool:
        """Whether the flags are as `entry` meant to leave them (reconciliation). A
        rollout at 100 % counts as enabled: the unleash backend reads it back so."""
        flag = self.backend.load(entry.environment).config.flags.get(entry.flag)
        if flag is None or flag.percentage != entry.to_percentage:
            return False
        full = {flag.state, entry.to_state} == {FlagState.ROLLOUT, FlagState.ENABLED}
        return flag.state == entry.to_state or (full and flag.percentage == 100)

    @property
    def thresholds(self) -> HealthThresholds:
        s = self.settings
        return HealthThresholds(
            s.error_rate_degraded,
            s.error_rate_unhealthy,
            s.p99_degraded_seconds,
            s.p99_unhealthy_seconds,
        )

    @property
    def sources(self) -> Sources:
        """Every metrics source of this process, Prometheus first when configured, then
        the database roll-ups: `sources.metrics()`, `sources.canary()`,
        `sources.flag_series()`."""
        from queries.sources import Sources

        return Sources(self.prometheus, self.engine)

    def environments(self) -> list[str]:
        """Configured environments, the settings' environment first."""
        names = self.backend.environments()
        first = self.settings.environment
        return [first, *(n for n in names if n != first)]

    def config(self, environment: str) -> FlagConfig:
        """The base config merged with `environment`'s overrides; ConfigInvalid if bad."""
        return self.backend.load(environment).config

    def phases(self, environment: str) -> list[PhaseProgress]:
        return phase_progress(self.config(environment))

    def overview(self, environment: str, at: datetime | None = None) -> Overview:
        """Every flag of `environment` with its numbers, from the first source that answers."""
        from app.services.overview import load_overview, with_external_changes
        from queries.audit import LAST_CHANGE_COLUMNS, last_changes
        from queries.frames import empty_frame

        at = at or datetime.now(UTC)
        notices = list(self.notices)
        snapshot = self.backend.load(environment)
        changes = empty_frame(LAST_CHANGE_COLUMNS)
        if self.engine is not None:
            try:
                changes = last_changes(self.engine, environment, guards=True)
            except SourceUnavailable as error:
                notices.append(f"{error}: last changes are not shown.")
        try:  # a flag server: changes made in its own UI count too
            changes = with_external_changes(changes, self.backend.external_changes(environment))
        except RolloutError as error:  # the flag server's log did not answer
            notices.append(f"{error}: changes made in the flag server are not shown.")
        s = self.settings
        return load_overview(
            config=snapshot.config,
            read_only=snapshot.read_only,
            environment=environment,
            sources=self.sources.metrics(),
            changes=changes,
            thresholds=self.thresholds,
            window=s.rate_window,
            sparkline_span=timedelta(minutes=s.sparkline_minutes),
            at=at,
            recent=timedelta(hours=s.recent_change_hours),
            gates=self.guard_policy.gate_settings(),
            notices=notices,
        )

    def outside_changes(self, environment: str) -> list[ExternalEdit] | None:
        """The changes made in the flag server itself (not by the dashboard), newest
        first: [] for a backend without such a log, None when the log does not answer."""
        try:
            return list(self.backend.external_changes(environment))
        except RolloutError:  # the flag server's log did not answer
            return None

    def latest_outside_change(self, environment: str, flag: str) -> ExternalEdit | None:
        """The newest change of `flag` made in the flag server itself, if known."""
        changes = self.outside_changes(environment) or []
        return next((change for change in changes if change.flag == flag), None)

    def cached_overview(self, environment: str) -> Overview:
        """`overview(environment)` computed once per refresh interval for every viewer of
        this process; a failed computation is not kept."""
        return self.overview_cache.get(environment, lambda: self.overview(environment))


def open_backend(settings: Settings, engine: Engine | None, *, seed: bool = True) -> FlagBackend:
    """The flag backend the settings name. With `seed`, an empty `sql` backend is filled
    from the flag files once (`seed_sql_flags`)."""
    if settings.flag_backend is FlagBackendKind.YAML:
        return YamlFlagBackend(settings.resolved_flags_file)
    if settings.flag_backend is FlagBackendKind.UNLEASH:
        return open_unleash_backend(settings)
    if engine is None:
        raise SourceUnavailable("metrics database", "the sql flag backend needs it")
    backend = SqlFlagBackend(engine)
    if seed:
        seed_sql_flags(backend, settings)
    return backend


def seed_sql_flags(backend: SqlFlagBackend, settings: Settings) -> bool:
    """On a first start (the database holds no flags), import `ROLLOUT_FLAGS_FILE` (or
    `<state_dir>/feature_flags.yaml` when present) with every environment it has an
    override file for, in one transaction; True if this process did. Without a file the
    backend stays empty (see `EMPTY_SQL_BACKEND`). ConfigInvalid for a named file that is
    missing or invalid. Safe when processes start at once: one of them seeds."""
    path = settings.resolved_flags_file
    if backend.environments() or (settings.flags_file is None and not path.is_file()):
        return False
    names = dict.fromkeys([settings.environment, *environments(path)])
    return backend.seed({name: load_config(path, name) for name in names})


#: what an empty `sql` flag backend is said to be, on every start until it holds flags
EMPTY_SQL_BACKEND = (
    "the sql flag backend holds no flags yet: set ROLLOUT_FLAGS_FILE to a flag file and "
    "start `rollout-dashboard serve` or `autopilot` (or any command that writes) to import it "
    "once"
)


def open_unleash_backend(settings: Settings) -> FlagBackend:
    """The `unleash` backend; SettingsInvalid naming ROLLOUT_UNLEASH_URL /
    ROLLOUT_UNLEASH_TOKEN when one is missing. Writers of one state directory queue on a
    file lock there between their version check and their write."""
    from app.settings import SettingsInvalid
    from app.unleash.api import UnleashApi
    from app.unleash.backend import UnleashFlagBackend, file_lock

    missing = [
        f"ROLLOUT_UNLEASH_{name.upper()}: required by ROLLOUT_FLAG_BACKEND=unleash"
        + (
            " (or `unleash_token` under [rollout] in .streamlit/secrets.toml)"
            if name == "token"
            else ""
        )
        for name, value in (("url", settings.unleash_url), ("token", settings.unleash_token))
        if value is None or not (value if isinstance(value, str) else value.get_secret_value())
    ]
    if missing:
        raise SettingsInvalid(missing)
    assert settings.unleash_url is not None and settings.unleash_token is not None
    api = UnleashApi(settings.unleash_url, settings.unleash_token, settings.unleash_timeout_seconds)
    lock_path = settings.state_dir / ".unleash-writes.lock"
    return UnleashFlagBackend(
        api,
        settings.unleash_project,
        settings.unleash_metadata_file,
        write_lock=lambda: file_lock(lock_path),
    )


def open_runtime(
    settings: Settings,
    *,
    read_only: bool = False,
    on_migrated: Callable[[Migration], None] | None = None,
    hand_over_notifications: bool = False,
) -> Runtime:
    """Open the database and the flag backend named by `settings`; the Prometheus client
    is made on first use. The database is upgraded to this release's schema when
    `ROLLOUT_AUTO_MIGRATE` allows and the process is not `read_only`; otherwise one at
    another revision raises SchemaNotCurrent. An empty sql backend is seeded unless
    `read_only`. `on_migrated` hears of a schema this process moved.
    `hand_over_notifications`: see `Runtime`."""
    notices: list[str] = []
    engine: Engine | None = None
    # a flag server without its URL or token is said before the database's schema
    unleash = (
        open_unleash_backend(settings) if settings.flag_backend is FlagBackendKind.UNLEASH else None
    )
    try:
        engine = open_database(
            settings.resolved_database_url,
            migrate_schema=settings.auto_migrate and not read_only,
            on_migrated=on_migrated,
        )
    except SQLAlchemyError as error:
        notices.append(f"metrics database unavailable: {type(error).__name__}")
    backend = unleash or open_backend(settings, engine, seed=not read_only)
    if settings.flag_backend is FlagBackendKind.SQL:
        with contextlib.suppress(SourceUnavailable):
            if not backend.environments():
                notices.append(EMPTY_SQL_BACKEND)
    audit = AuditLog(engine, settings.journal_file)
    runtime = Runtime(settings, engine, backend, audit, notices, hand_over_notifications)
    if engine is not None:
        moved = audit.replay_journal()
        if moved:
            notices.append(
                f"{moved} audit record(s) kept locally while the database was down are now in it"
            )
        # Flags that cannot be read now leave pending records pending, visibly.
        with contextlib.suppress(ConfigInvalid, OSError, SourceUnavailable):
            audit.reconcile_pending(runtime.is_applied)
    return runtime
