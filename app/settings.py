"""Every setting of the dashboard, read once and passed down.

Sources, highest first: keyword arguments, `ROLLOUT_*` environment variables, the
`[rollout]` table of `.streamlit/secrets.toml`, then the embedded defaults (SQLite in
`.rollout/`, the bundled demo config, no Prometheus).

Every secret may instead come from a file named by `<NAME>_FILE` (a mounted Kubernetes or
compose secret): `ROLLOUT_DATABASE_URL_FILE`, `ROLLOUT_PROMETHEUS_URL_FILE`,
`ROLLOUT_UNLEASH_TOKEN_FILE`, `ROLLOUT_WEBHOOK_URLS_FILE`, `ROLLOUT_WEBHOOK_URL_<NAME>_FILE`.
The file's content, without its trailing newline, is the value. Both set, or a file that
cannot be read, is an invalid setting named without its content.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import tomllib
from dataclasses import replace
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from app.errors import RolloutError
from app.quoting import quoted
from app.rollout.roles import Role
from queries.names import OVERRIDABLE, PRESETS, ErrorsIn, MetricNames, MetricPreset, name_problem

__all__ = [
    "EvidencePolicy",
    "FlagBackendKind",
    "LogFormat",
    "Settings",
    "SettingsInvalid",
    "WebhookKind",
    "effective_configuration",
    "load_settings",
    "masked_url",
    "redacted_url",
    "server_address",
    "settings_problems",
]

SECRETS_FILE = Path(".streamlit/secrets.toml")
_WEEK_SECONDS = 7 * 24 * 3600


def server_address(text: str) -> str:
    """The interface `serve` binds: an IPv4 or IPv6 address, or `localhost`. ValueError
    otherwise (a host name would be resolved by the server, failing late and unclearly)."""
    value = text.strip()
    if value == "localhost":
        return value
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(
            f"not an IP address: {text!r} (use 127.0.0.1 for this machine only, "
            "0.0.0.0 for every interface)"
        ) from None


class FlagBackendKind(StrEnum):
    """Where flags are read and written: the YAML files, the metrics database, or an
    Unleash server's Admin API."""

    YAML = "yaml"
    SQL = "sql"
    UNLEASH = "unleash"


class EvidencePolicy(StrEnum):
    """What a guard does when the emitter cannot provide its evidence (OpenFeature has no
    config-info gauge for propagation): fail closed, as with missing data, or pass."""

    FAIL = "fail"
    PASS = "pass"  # noqa: S105 - a verdict, not a password


class LogFormat(StrEnum):
    """How every process logs: plain lines, or one JSON object per line (`app.logs`)."""

    TEXT = "text"
    JSON = "json"


class WebhookKind(StrEnum):
    """The body a webhook is sent (`app.notify`): the generic JSON document, or
    Slack's `{"text": ...}` (also read by Mattermost, Rocket.Chat, Teams workflows...)."""

    JSON = "json"
    SLACK = "slack"


#: a webhook's name: its URL is `ROLLOUT_WEBHOOK_URL_<NAME>`, so letters, digits and `_`
_WEBHOOK_NAME = re.compile(r"^[a-z0-9_]{1,64}$")
_WEBHOOK_URL_PREFIX = "ROLLOUT_WEBHOOK_URL_"


#: MetricNames fields that are not a single name: a list of labels, or a flag
_NON_NAME_FIELDS = frozenset(
    {"environment_join", "errors_counted_in_evaluations", "errors_in", "variants_are_on_off"}
)


class _SecretsTomlSource(PydanticBaseSettingsSource):
    """Reads the `[rollout]` table of `.streamlit/secrets.toml`, when the file exists."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls)
        self._values: dict[str, Any] = {}
        if path.is_file():
            with path.open("rb") as handle:
                table = tomllib.load(handle).get("rollout", {})
            self._values = {str(k).lower(): v for k, v in table.items()}
            # `[rollout.webhooks]` holds the webhooks' URLs (secrets), ROLLOUT_WEBHOOKS
            # their names and kinds
            if isinstance(self._values.get("webhooks"), dict):
                self._values["webhook_urls"] = self._values.pop("webhooks")

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._values.items() if k in self.settings_cls.model_fields}


#: the settings whose value is a secret, each also read from `ROLLOUT_<NAME>_FILE`
SECRET_FILE_SETTINGS = ("database_url", "prometheus_url", "unleash_token", "webhook_urls")
_FILE_SUFFIX = "_FILE"


def read_secret_file(variable: str, path_text: str) -> tuple[str | None, str | None]:
    """The content of the file `<variable>` names, its trailing newline stripped, or why
    it cannot be used: (value, None) or (None, problem). A problem names the variable and
    the path, never a byte of the content."""
    path = Path(path_text)
    try:
        content = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, f"{variable}: no such file: {path}"
    except IsADirectoryError:
        return None, f"{variable}: {path} is a directory, not a file"
    except PermissionError:
        return None, f"{variable}: cannot read {path}: permission denied"
    except UnicodeDecodeError:
        return None, f"{variable}: {path} is not UTF-8 text"
    except OSError as error:
        return None, f"{variable}: cannot read {path}: {error.strerror or type(error).__name__}"
    value = content.rstrip("\r\n")
    if not value.strip():
        return None, f"{variable}: {path} is empty"
    return value, None


def _set(value: str | None) -> bool:
    return value is not None and value != ""


class _EnvSource(EnvSettingsSource):
    """`ROLLOUT_*` environment variables; each secret may instead be `ROLLOUT_<NAME>_FILE`,
    read here. SettingsInvalid when a secret is set both ways, its file cannot be read,
    or a setting that is not a secret is given as a file (it would be ignored)."""

    def _load_env_vars(self) -> dict[str, str | None]:
        variables = dict(super()._load_env_vars())
        prefix = self.env_prefix.lower()
        problems = []
        for key in sorted(variables):
            if not (key.startswith(prefix) and key.endswith(_FILE_SUFFIX.lower())):
                continue
            field = key[len(prefix) : -len(_FILE_SUFFIX)]
            if field in self.settings_cls.model_fields and field not in SECRET_FILE_SETTINGS:
                problems.append(
                    f"{key.upper()}: only secrets are read from a file "
                    f"({', '.join(f'ROLLOUT_{name.upper()}_FILE' for name in SECRET_FILE_SETTINGS)}"
                    f"); set ROLLOUT_{field.upper()} itself"
                )
        for field in SECRET_FILE_SETTINGS:
            name = f"{prefix}{field}"
            path = variables.pop(f"{name}{_FILE_SUFFIX.lower()}", None)
            if not _set(path):
                continue
            assert path is not None
            variable = f"ROLLOUT_{field.upper()}"
            if _set(variables.get(name)):
                problems.append(f"{variable}: set both it and {variable}_FILE; keep one")
                continue
            value, problem = read_secret_file(f"{variable}_FILE", path)
            if problem:
                problems.append(problem)
            else:
                variables[name] = value
        if problems:
            raise SettingsInvalid(problems)
        return variables


class _WebhookUrlsSource(PydanticBaseSettingsSource):
    """`ROLLOUT_WEBHOOK_URL_<NAME>` environment variables, one per webhook's URL, or
    `ROLLOUT_WEBHOOK_URL_<NAME>_FILE` naming a file that holds it (so no webhook's name
    ends in `_file`). SettingsInvalid as for the other secrets' files."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        given = {
            name.upper(): value
            for name, value in os.environ.items()
            if name.upper().startswith(_WEBHOOK_URL_PREFIX) and len(name) > len(_WEBHOOK_URL_PREFIX)
        }
        urls: dict[str, str] = {}
        problems = []
        for variable, value in sorted(given.items()):
            if not variable.endswith(_FILE_SUFFIX):
                urls[variable[len(_WEBHOOK_URL_PREFIX) :].lower()] = value
                continue
            if not _set(value):
                continue
            plain = variable.removesuffix(_FILE_SUFFIX)
            if _set(given.get(plain)):
                problems.append(f"{plain}: set both it and {variable}; keep one")
                continue
            url, problem = read_secret_file(variable, value)
            if problem:
                problems.append(problem)
            else:
                urls[plain[len(_WEBHOOK_URL_PREFIX) :].lower()] = str(url)
        if problems:
            raise SettingsInvalid(problems)
        return {"webhook_urls": urls} if urls else {}


class Settings(BaseSettings):
    """The dashboard's configuration. Every field is `ROLLOUT_<NAME>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="ROLLOUT_", extra="ignore", frozen=True)

    state_dir: Path = Field(
        Path(".rollout"),
        description="Where the process keeps its local files: the demo's flag copy and SQLite "
        "metrics database, and the audit journal that holds records while the metrics "
        "database is unreachable.",
    )
    flags_file: Path | None = Field(
        None,
        description="The base flag config; the `feature_flags_<env>.yaml` files beside it are the "
        "environment overrides. Unset: `<state_dir>/feature_flags.yaml`.",
    )
    flag_backend: FlagBackendKind = Field(
        FlagBackendKind.YAML,
        description="Where flags live: `yaml` (the files), `sql` (the metrics database; filled from"
        " `ROLLOUT_FLAGS_FILE` on the first start) or `unleash` (an Unleash server's "
        "Admin API, see docs/unleash.md).",
    )
    unleash_url: str | None = Field(
        None,
        description="The Unleash server's root URL (`http://unleash.internal:4242`), for "
        "`ROLLOUT_FLAG_BACKEND=unleash` and `sync-unleash`.",
    )
    unleash_token: SecretStr | None = Field(
        None,
        description="An Unleash admin API token: better `unleash_token` under `[rollout]` in "
        "`.streamlit/secrets.toml`, or a file (`ROLLOUT_UNLEASH_TOKEN_FILE`). Never "
        "shown, logged or audited.",
    )
    unleash_project: str = Field(
        "default",
        pattern=r"^[A-Za-z0-9_.-]{1,100}$",
        description="The Unleash project whose features are the flags.",
    )
    unleash_timeout_seconds: float = Field(
        5.0,
        gt=0,
        le=120,
        allow_inf_nan=False,
        description="Per Unleash API call; past it Unleash is shown as unavailable and the CLI "
        "exits 4.",
    )
    unleash_metadata_file: Path | None = Field(
        None,
        description="Optional YAML of what Unleash has no place for: the phase plan, safety flags, "
        "rollout steps, and per flag phase, description, owner and dependencies.",
    )
    unleash_sync_minutes: int = Field(
        10,
        ge=0,
        le=24 * 60,
        description="`serve` copies Unleash's client metrics into the metrics database this often, "
        "the first time at start (0: never; only when the URL and token are set).",
    )
    environment: str = Field(
        "production",
        description="The environment shown first (and the only one in single-environment mode).",
    )
    database_url: SecretStr | None = Field(
        None,
        description="SQLAlchemy URL of the metrics database (audit log, roll-ups, plans, requests, "
        "leases), e.g. `postgresql+psycopg://user:pw@host/db`. Unset: SQLite at "
        "`<state_dir>/metrics.db`.",
    )
    auto_migrate: bool = Field(
        True,
        description="`serve`, `autopilot` and the commands that write upgrade the metrics "
        "database's schema at start, under a database lock (any number may start at "
        "once); `false`: they refuse a database at another revision (exit 4). The "
        "commands that only read never migrate: they exit 4 saying to run "
        "`rollout-dashboard db upgrade`.",
    )
    prometheus_url: SecretStr | None = Field(
        None,
        description="PromQL endpoint (Prometheus, VictoriaMetrics, Thanos, Mimir). Unset: the "
        "numbers come from the metrics database's roll-ups.",
    )
    prometheus_timeout_seconds: float = Field(
        5.0,
        gt=0,
        le=300,
        allow_inf_nan=False,
        description="Per PromQL request; past it the source is shown as down and the next one "
        "answers.",
    )
    prometheus_retries: int = Field(
        0,
        ge=0,
        le=5,
        description="Retries on 502, 503 and 504 (each retry adds up to one timeout).",
    )
    use_recording_rules: bool = Field(
        False,
        description="Ask the series recorded by `deploy/prometheus/rollout.rules.yml` first (seed "
        "names, 5-minute window), falling back to the raw expressions where they are "
        "absent.",
    )
    metric_preset: MetricPreset = Field(
        MetricPreset.SEED,
        description="Metric and label names of the emitter: `seed` (docs/design.md §3), `usage`, "
        "`openfeature` or `unleash` (see docs/metrics.md); each `ROLLOUT_METRIC_*` "
        "setting overrides one name.",
    )
    # -- one override per name the preset holds (queries.names.MetricNames); unset: the
    # preset's. Metric names and label names are checked against Prometheus's patterns.
    metric_evaluations: str | None = Field(
        None, description="Evaluations counter (unset: the preset's)."
    )
    metric_errors: str | None = Field(None, description="Error counter ('' = none).")
    metric_duration: str | None = Field(None, description="Latency histogram ('' = none).")
    metric_config_info: str | None = Field(
        None, description="Config-info gauge, for the propagation guard ('' = none)."
    )
    metric_rollout_percentage: str | None = Field(
        None, description="Applied-percentage gauge ('' = none)."
    )
    metric_http_requests: str | None = Field(None, description="Canary: request counter.")
    metric_http_duration: str | None = Field(None, description="Canary: latency histogram.")
    metric_flag_label: str | None = Field(None, description="Label holding the flag key.")
    metric_variant_label: str | None = Field(None, description="Label holding the variant.")
    metric_reason_label: str | None = Field(
        None, description="Label holding the evaluation's reason ('' = none)."
    )
    metric_environment_label: str | None = Field(
        None,
        description="Label holding the environment ('' = single-environment mode: every series is "
        "`ROLLOUT_ENVIRONMENT`).",
    )
    metric_error_type_label: str | None = Field(None, description="Label holding the error type.")
    metric_track_label: str | None = Field(
        None, description="Canary: label holding the track (`canary` or `stable`)."
    )
    metric_environment_info: str | None = Field(
        None,
        description="Info metric holding the environment label, joined to every series, e.g. "
        "`target_info` ('' = the label is on every series).",
    )
    metric_environment_join: str | None = Field(
        None, description="Labels joining the info metric, comma-separated (`job,instance`)."
    )
    metric_errors_counted_in_evaluations: bool | None = Field(
        None, description="A failed evaluation also counts in the evaluations counter."
    )
    metric_errors_in: ErrorsIn | None = Field(
        None,
        description="Where the emitter counts a failed evaluation, so that each counts once: "
        "`counter` (the error counter), `reason` (an evaluation with reason `error`) or"
        " `both`.",
    )
    metric_variants_are_on_off: bool | None = Field(
        None, description="The variant label only says on/off (no real variant label)."
    )
    guard_without_evidence: EvidencePolicy = Field(
        EvidencePolicy.FAIL,
        description="An advance guard whose evidence the emitter cannot provide (propagation "
        "without a config-info metric, exposure without a reason or variant label): "
        '`fail` (closed, as for missing data) or `pass`; either way the guard says "not'
        ' available from this emitter".',
    )

    @field_validator(
        *(f"metric_{name}" for name in OVERRIDABLE if name not in _NON_NAME_FIELDS), mode="after"
    )
    @classmethod
    def _valid_metric_name(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        problem = name_problem(str(info.field_name).removeprefix("metric_"), value.strip())
        if problem:
            raise ValueError(problem)
        return value.strip()

    @field_validator("metric_environment_join", mode="after")
    @classmethod
    def _valid_join(cls, value: str | None) -> str | None:
        if value is None:
            return None
        labels = [label.strip() for label in value.split(",")]
        for label in labels:
            problem = name_problem("environment_join", label)
            if problem:
                raise ValueError(f"{label!r}: {problem}")
        return ",".join(labels)

    rate_window_seconds: int = Field(
        300, ge=15, le=_WEEK_SECONDS, description="Window of rates, error ratios and quantiles."
    )
    sparkline_minutes: int = Field(
        30, ge=5, le=_WEEK_SECONDS // 60, description="History in the overview's sparklines."
    )
    refresh_seconds: int = Field(
        10,
        ge=2,
        le=3600,
        description="Auto-refresh period of the pages; data on screen is at most this much older "
        "than the sources.",
    )
    error_rate_degraded: float = Field(
        0.01,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="Error ratio above which a flag is degraded.",
    )
    error_rate_unhealthy: float = Field(
        0.05,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="Error ratio above which a flag is unhealthy.",
    )
    p99_degraded_seconds: float = Field(
        0.05,
        gt=0,
        le=3600,
        allow_inf_nan=False,
        description="p99 latency above which a flag is degraded.",
    )
    p99_unhealthy_seconds: float = Field(
        0.25,
        gt=0,
        le=3600,
        allow_inf_nan=False,
        description="p99 latency above which a flag is unhealthy.",
    )
    stale_after_seconds: int = Field(
        120,
        ge=1,
        le=_WEEK_SECONDS,
        description="A newest sample older than this is stale: the banner turns red and the "
        "data-fresh guard fails.",
    )
    recent_change_hours: int = Field(
        24, ge=1, le=24 * 366, description="A change this recent sorts its flag up on the overview."
    )
    demo: bool = Field(
        False,
        description="Demo mode: everyone acts as a labelled local operator, without sign-in (set by"
        " `demo`).",
    )
    roles: dict[str, Role] = Field(
        default_factory=dict,
        description="Role mapping, JSON or a TOML table: an e-mail, or `group:<name>` for the ID "
        "token's `groups` claim, to `viewer`, `operator` or `admin`: "
        '`{"alice@example.com": "admin", "group:oncall": "operator"}`.',
    )
    default_role: Role = Field(
        Role.VIEWER,
        description="Role of a signed-in user (or CLI actor) the mapping does not name.",
    )
    typed_confirmation_environments: tuple[str, ...] = Field(
        ("production",),
        description="Where the action dialog asks to type the flag key (JSON list).",
    )
    approval_environments: tuple[str, ...] = Field(
        ("production",),
        description="Where an advance, a restore that goes up or a guard override waits for another"
        " operator's approval, as a change request (JSON list; none in demo mode unless"
        " set).",
    )
    request_expiry_hours: float = Field(
        24,
        gt=0,
        le=24 * 30,
        allow_inf_nan=False,
        description="A change request not decided within this expires.",
    )
    undo_window_hours: float = Field(
        24,
        gt=0,
        le=24 * 30,
        allow_inf_nan=False,
        description="An operator may restore a change without an admin's override within this time "
        "of it, while its flags have not moved since.",
    )
    min_soak_minutes: float = Field(
        15,
        ge=0,
        le=_WEEK_SECONDS // 60,
        allow_inf_nan=False,
        description="Advance guard: minimum time at the current step; also the soak window.",
    )
    max_error_rate: float = Field(
        0.01,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="Guards: highest error ratio since the step began (an advance waits while the "
        "estimate is above it; a plan acts only once an always-valid test proves it).",
    )
    exposure_tolerance: float = Field(
        0.02,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="Guards: largest drift of the observed share of the rollout variant from the "
        "configured one.",
    )
    max_error_difference: float = Field(
        0.0,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="Guards: how much more often (0.01 = 1 point) the treatment may fail than the "
        "control before it is worse.",
    )
    evidence_slot_seconds: float = Field(
        30,
        ge=1,
        le=600,
        allow_inf_nan=False,
        description="Guards: the counts are judged per slot of this many seconds on one "
        "epoch-aligned grid (a step is judged once its first whole slot has ended); a "
        "divisor of 600.",
    )
    guardrails_file: Path | None = Field(
        None,
        description="Guards: your own guardrails — metrics of the service per flag and variant "
        "(HTTP 5xx, checkout failures) judged treatment against control like the flag's own "
        "errors (docs/metrics.md, 'Your own guardrails'). Unset: none.",
    )
    false_action_budget: float = Field(
        0.01,
        gt=0,
        lt=1,
        allow_inf_nan=False,
        description="Guards: the chance per plan-day that the data gates act on a healthy flag "
        "(always-valid tests: looking every tick does not raise it).",
    )
    simulator_port: int = Field(
        9464,
        ge=1,
        le=65535,
        description="The demo simulator's `/metrics` port (the demo's Prometheus gets the next "
        "one).",
    )
    server_address: str = Field(
        "127.0.0.1",
        description="Interface `serve` binds (`--address` wins): `127.0.0.1` this machine only (a "
        "browser here, or a reverse proxy on this host adding TLS and sign-in); "
        "`0.0.0.0` every interface (in a container; put TLS and sign-in in front). "
        "Anything but an IP address or `localhost` is refused. The demo always binds "
        "127.0.0.1.",
    )
    canary_flag: str = Field(
        "canary_deployment",
        min_length=1,
        description="The flag (or deployment) the canary track belongs to: the Canary page names "
        "it, links to it and offers to roll it back or kill it; plans on it may gate on"
        " the canary verdict.",
    )
    autopilot_interval_seconds: float = Field(
        30,
        ge=0.2,
        le=3600,
        allow_inf_nan=False,
        description="Autopilot: one tick (every active plan looked at) every this many seconds.",
    )
    autopilot_lease_seconds: float = Field(
        90,
        ge=1,
        le=3600,
        allow_inf_nan=False,
        description="Autopilot: how long a leader may stay silent before a standby takes over (its "
        "lease).",
    )
    autopilot_window_seconds: float = Field(
        300,
        ge=5,
        le=86400,
        allow_inf_nan=False,
        description="Autopilot: the span the canary verdict is judged over (the guards judge since "
        "the step began).",
    )
    autopilot_pause_after_ticks: int = Field(
        10,
        ge=1,
        le=10_000,
        description="Autopilot: ticks in a row without data after which a plan pauses, saying why.",
    )
    autopilot_metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Autopilot: serve its own Prometheus metrics (`rollout_autopilot_*`) on this "
        "port; unset: none. Alert rules: `deploy/prometheus/autopilot.rules.yml`.",
    )
    autopilot_metrics_address: str = Field(
        "127.0.0.1",
        description="Autopilot: interface of the metrics port (`0.0.0.0` in a container).",
    )
    log_format: LogFormat = Field(
        LogFormat.TEXT,
        description="`text`, or `json`: one JSON object per line (time, level, event, and flag, "
        "environment, actor, audit_id where known) from `serve`, `autopilot` and the "
        "commands.",
    )
    public_url: str | None = Field(
        None,
        description="The dashboard's address as people reach it (`https://rollout.example.com`), "
        "for the flag links in webhook notifications; unset: no link.",
    )
    # before `webhooks`, whose check reads it
    webhook_urls: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Each webhook's URL, a secret, as JSON here: better `[rollout.webhooks]` in "
        '`.streamlit/secrets.toml` (`oncall = "https://hooks.slack.com/…"`), one '
        "`ROLLOUT_WEBHOOK_URL_<NAME>` per webhook, or a file named by "
        "`ROLLOUT_WEBHOOK_URL_<NAME>_FILE`. Never shown, logged or recorded.",
    )
    webhooks: Annotated[dict[str, WebhookKind], NoDecode] = Field(
        default_factory=dict,
        description="Webhooks notified of autopilot actions, `name=kind` pairs: "
        "`oncall=slack,audit=json` (kind `json` or `slack`; a name is letters, digits "
        "and `_`). Each needs a URL (`ROLLOUT_WEBHOOK_URLS`).",
    )
    notify_manual_actions: bool = Field(
        False,
        description="A person's applied advance, rollback, kill or emergency rollback (page or CLI)"
        " also notifies the webhooks, as event `manual:<action>`.",
    )

    @field_validator("evidence_slot_seconds", mode="after")
    @classmethod
    def _divides_ten_minutes(cls, value: float) -> float:
        """The gates restart every 10 minutes on the slot grid: a slot must divide it."""
        if not math.isclose(600 / value, round(600 / value)):
            raise ValueError("must divide 600 (10 minutes): 1, 2, 5, 10, 15, 30, 60 …")
        return value

    @field_validator("webhook_urls", mode="before")
    @classmethod
    def _lower_case_names(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(name).strip().lower(): url for name, url in value.items()}
        return value

    @field_validator("webhooks", mode="before")
    @classmethod
    def _parse_webhooks(cls, value: Any) -> Any:
        """`oncall=slack,audit=json` (from the environment) as {name: kind}. A value
        that is not a webhook's name is never quoted: it may be a misplaced URL."""
        if isinstance(value, str):
            pairs = [item.partition("=") for item in value.split(",") if item.strip()]
            if any(not equals for _, equals, _ in pairs):
                raise ValueError("expected name=kind pairs, e.g. oncall=slack,audit=json")
            value = {name: kind for name, _, kind in pairs}
        if not isinstance(value, dict):
            raise ValueError("expected name=kind pairs, e.g. oncall=slack,audit=json")
        named: dict[str, str] = {}
        for raw_name, raw_kind in value.items():
            name, kind = str(raw_name).strip().lower(), str(raw_kind).strip().lower()
            if not _WEBHOOK_NAME.match(name):
                raise ValueError(
                    "a webhook's name is letters, digits and _ (at most 64; not shown)"
                )
            if name in named:
                raise ValueError(f"webhook {quoted(name)} is named twice")
            if kind not in tuple(WebhookKind):
                raise ValueError(f"webhook {quoted(name)}: the kind must be json or slack")
            named[name] = kind
        return named

    @field_validator("webhooks", mode="after")
    @classmethod
    def _every_webhook_has_a_url(
        cls, value: dict[str, WebhookKind], info: ValidationInfo
    ) -> dict[str, WebhookKind]:
        if "webhook_urls" not in info.data:  # its own error is reported
            return value
        urls: dict[str, SecretStr] = info.data["webhook_urls"]
        problems = []
        for name in value:
            url = urls.get(name)
            if url is None or not url.get_secret_value().strip():
                problems.append(
                    f"webhook {quoted(name)} has no URL: set {_WEBHOOK_URL_PREFIX}{name.upper()}"
                    f' or `{name} = "https://…"` under [rollout.webhooks] in '
                    ".streamlit/secrets.toml"
                )
            elif _http_url_problem(url.get_secret_value()):
                problems.append(
                    f"webhook {quoted(name)}: its URL is not an http:// or https:// URL "
                    "with a host (a secret: not shown)"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url_is_usable(cls, url: str | None) -> str | None:
        if url is None or not url.strip():
            return None
        problem = _http_url_problem(url)
        if problem:
            raise ValueError(problem)
        return url.strip().rstrip("/")

    @field_validator("prometheus_url", "database_url")
    @classmethod
    def _url_is_usable(cls, url: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        problem_of = (
            _http_url_problem if info.field_name == "prometheus_url" else _database_url_problem
        )
        problem = None if url is None else problem_of(url.get_secret_value())
        if problem:
            raise ValueError(problem)
        return url

    @field_validator("unleash_url")
    @classmethod
    def _unleash_url_is_usable(cls, url: str | None) -> str | None:
        if url is None:
            return None
        problem = _http_url_problem(url)
        if problem:
            raise ValueError(problem)
        return url.strip().rstrip("/")

    @field_validator("server_address", "autopilot_metrics_address")
    @classmethod
    def _valid_server_address(cls, value: str) -> str:
        return server_address(value)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            _EnvSource(settings_cls),
            _WebhookUrlsSource(settings_cls),
            _SecretsTomlSource(settings_cls, SECRETS_FILE),
        )

    @property
    def approval_required_in(self) -> frozenset[str]:
        """The environments whose advances wait for a second person. The demo has one
        person, so none there unless `ROLLOUT_APPROVAL_ENVIRONMENTS` says otherwise."""
        if self.demo and "approval_environments" not in self.model_fields_set:
            return frozenset()
        return frozenset(self.approval_environments)

    @property
    def resolved_flags_file(self) -> Path:
        return self.flags_file or self.state_dir / "feature_flags.yaml"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.state_dir / 'metrics.db').resolve()}"

    @property
    def journal_file(self) -> Path:
        """Where audit records wait while the metrics database is unreachable."""
        return self.state_dir / "audit-journal.jsonl"

    @property
    def metric_names(self) -> MetricNames:
        """The preset's names with every `ROLLOUT_METRIC_*` override applied."""
        overrides: dict[str, Any] = {}
        for name in OVERRIDABLE:
            value = getattr(self, f"metric_{name}")
            if value is not None:
                overrides[name] = tuple(value.split(",")) if name == "environment_join" else value
        return replace(PRESETS[self.metric_preset], **overrides)

    @property
    def rate_window(self) -> timedelta:
        return timedelta(seconds=self.rate_window_seconds)


class SettingsInvalid(RolloutError, ValueError):
    """Settings that cannot be used; `problems` name each `ROLLOUT_*` variable and why,
    never quoting a secret (a URL's credentials are replaced by `***`)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and secrets file; keyword arguments win.
    SettingsInvalid naming every bad setting."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise SettingsInvalid(settings_problems(error)) from None
    except SettingsError as error:  # a JSON-valued setting that does not parse
        raise SettingsInvalid([_unparsed(str(error))]) from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsInvalid([f"{SECRETS_FILE}: not valid TOML ({error})"]) from None


#: Settings whose value may hold credentials: their value is never quoted.
_SECRET_FIELDS = frozenset(
    {
        "database_url",
        "prometheus_url",
        "unleash_token",
        "unleash_url",
        "public_url",
        "webhook_urls",
        "webhooks",  # a URL pasted there by mistake
    }
)


def settings_problems(error: ValidationError) -> list[str]:
    """One line per invalid setting: `ROLLOUT_REFRESH_SECONDS: Input should be greater
    than or equal to 2 (got '-1')`; a secret's value is never quoted."""
    problems = []
    for item in error.errors(include_url=False):
        name = str(item["loc"][0]) if item["loc"] else "?"
        message = str(item["msg"]).removeprefix("Value error, ")
        got = "" if name in _SECRET_FIELDS else f" (got {quoted(str(item.get('input')))})"
        variable = f"ROLLOUT_{name.upper()}"
        if name == "webhook_urls" and len(item["loc"]) > 1:  # one webhook's URL
            variable = f"{_WEBHOOK_URL_PREFIX}{str(item['loc'][1]).upper()}"
        problems.append(f"{variable}: {message}{got}")
    return problems


def effective_configuration(settings: Settings) -> list[tuple[str, str]]:
    """What a starting `serve` or `autopilot` says it runs on, as (name, value) pairs:
    sources, the database, the flag backend, approvals, the autopilot and logging.
    Credentials are masked; webhook URLs and tokens are never named, only counted."""
    s = settings
    prometheus = s.prometheus_url
    metrics = (
        f"prometheus {masked_url(prometheus.get_secret_value())}"
        if prometheus is not None
        else "the metrics database's roll-ups (no ROLLOUT_PROMETHEUS_URL)"
    )
    backend = str(s.flag_backend)
    if s.flag_backend is FlagBackendKind.YAML:
        backend += f" {s.resolved_flags_file}"
    elif s.flag_backend is FlagBackendKind.UNLEASH:
        backend += f" {masked_url(s.unleash_url or '')} project {s.unleash_project}"
    else:
        backend += " (the metrics database)"
    approvals = ", ".join(sorted(s.approval_required_in)) or "none"
    webhooks = ", ".join(f"{name} ({kind})" for name, kind in s.webhooks.items()) or "none"
    port = s.autopilot_metrics_port
    return [
        ("environment", s.environment),
        ("metrics source", f"{metrics}, preset {s.metric_preset}"),
        ("database", masked_url(s.resolved_database_url)),
        ("flag backend", backend),
        ("approval environments", approvals),
        ("webhooks", webhooks),
        (
            "autopilot",
            f"one tick every {s.autopilot_interval_seconds:g} s, lease "
            f"{s.autopilot_lease_seconds:g} s, metrics "
            + (f"on {s.autopilot_metrics_address}:{port}" if port else "not served"),
        ),
        ("log format", str(s.log_format)),
    ]


def masked_url(url: str) -> str:
    """`url` with its password (and any password-like query value) shown as `***`,
    keeping the user name; `redacted_url` when it does not parse."""
    from sqlalchemy.engine import make_url

    if url.strip().lower().startswith(("http://", "https://")):
        return _masked_http_url(url)
    try:
        parsed = make_url(url.strip())
    except Exception:  # not an SQLAlchemy URL
        return redacted_url(url)
    query = {
        key: ("***" if _SECRET_KEY.search(key) else value) for key, value in parsed.query.items()
    }
    return parsed.set(query=query).render_as_string(hide_password=True)


_SECRET_KEY = re.compile(r"pass|secret|token|key", re.IGNORECASE)


def _masked_http_url(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return redacted_url(url)
    # a user name alone may be a token (https://TOKEN@host): masked too
    user = f"{parts.username}:***@" if parts.password else ("***@" if parts.username else "")
    query = "***" if parts.query else ""
    return urlunsplit((parts.scheme, f"{user}{host}{port}", parts.path, query, ""))


def redacted_url(url: str) -> str:
    """`url` with any `user:password@` replaced by `***@`, even when it does not parse."""
    return _CREDENTIALS.sub(r"\1***@", url.strip())


_CREDENTIALS = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@")


def _http_url_problem(url: str) -> str | None:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - parsing the port is the check: it raises if malformed
    except ValueError:
        return f"not a URL ({redacted_url(url)})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"must be an http:// or https:// URL with a host ({redacted_url(url)})"
    return None


def _database_url_problem(url: str) -> str | None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(url.strip()).get_dialect()
    except (ArgumentError, ValueError):
        return f"not an SQLAlchemy database URL ({redacted_url(url)})"
    except ImportError:
        return f"its database driver is not installed ({redacted_url(url)})"
    return None


def _unparsed(message: str) -> str:
    """pydantic-settings' `error parsing value for field "roles" …`, naming the variable."""
    found = re.search(r'field "(\w+)"', message)
    name = f"ROLLOUT_{found.group(1).upper()}" if found else "a ROLLOUT_ setting"
    return f"{name}: not valid JSON"
