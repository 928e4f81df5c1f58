"""Typed model of the flag configuration (the seed's YAML format, docs/design.md §2).

Every class is frozen: a loaded configuration is a value, never mutated in place.
Validation happens here (ranges, closed sets, condition syntax); the loader maps
each validation error back to the file and line it came from.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, date, datetime
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    field_validator,
    model_validator,
)

from app.flags.conditions import Condition, ConditionError, parse_condition

__all__ = [
    "DEFAULT_ROLLOUT_STEPS",
    "FLAG_KEY",
    "FlagConfig",
    "FlagDefinition",
    "FlagMetadata",
    "FlagState",
    "GlobalSettings",
    "GradualStep",
    "Phase",
    "Rollout",
    "RolloutStrategy",
    "TargetingRule",
    "on_for_nobody",
]

DEFAULT_ROLLOUT_STEPS: tuple[float, ...] = (1.0, 5.0, 10.0, 25.0, 50.0, 100.0)

#: A flag key is a name: it becomes a Prometheus label, a URL parameter, a file line and
#: a database key. ASCII only, so a Cyrillic a (U+0430) cannot pass for a Latin one.
FLAG_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def _flag_key(value: str) -> str:
    if not FLAG_KEY.fullmatch(value):
        raise ValueError(
            "a flag key is 1 to 100 ASCII letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return value


#: The key of a flag in a config (a FlagDefinition built directly may carry any key).
FlagKey = Annotated[str, AfterValidator(_flag_key)]


class FlagState(StrEnum):
    ENABLED = "enabled"
    DISABLED = "disabled"
    ROLLOUT = "rollout"


class RolloutStrategy(StrEnum):
    PERCENTAGE = "percentage"
    USER_LIST = "user_list"
    GRADUAL = "gradual"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GradualStep(_Frozen):
    """One scheduled step of a `gradual` rollout: from `at` on, apply `percentage`."""

    at: datetime
    percentage: float = Field(ge=0.0, le=100.0)

    @field_validator("at")
    @classmethod
    def _naive_means_utc(cls, value: datetime) -> datetime:
        # YAML `2025-03-01 09:00` is naive; comparing it with an aware `now` would raise.
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class Rollout(_Frozen):
    """How a flag in state `rollout` chooses its users.

    `gradual` follows `schedule` (the latest step whose time has come); before the
    first step it applies `percentage`.
    """

    strategy: RolloutStrategy = RolloutStrategy.PERCENTAGE
    percentage: float = Field(default=0.0, ge=0.0, le=100.0)
    sticky: bool = True
    user_list: tuple[str, ...] = ()
    variant: str = "on"
    schedule: tuple[GradualStep, ...] = ()
    #: what keeps a user in the same bucket, as a flag server names it (Unleash's
    #: `stickiness`: default, userId, sessionId, random…); empty for the YAML files
    stickiness: str = ""

    def percentage_at(self, now: datetime) -> float:
        """The percentage this rollout applies at `now` (schedule-aware for `gradual`)."""
        if self.strategy is not RolloutStrategy.GRADUAL:
            return self.percentage
        due = [step for step in self.schedule if step.at <= now]
        return max(due, key=lambda step: step.at).percentage if due else self.percentage


class TargetingRule(_Frozen):
    name: str
    condition: str
    variant: str
    priority: int = 0

    @field_validator("condition")
    @classmethod
    def _condition_is_allowed(cls, value: str) -> str:
        try:
            parse_condition(value)
        except ConditionError as error:
            raise ValueError(str(error)) from error
        return value

    @property
    def compiled(self) -> Condition:
        return parse_condition(self.condition)


class FlagMetadata(_Frozen):
    phase: int | None = Field(default=None, ge=1, le=6)
    description: str = ""
    dependencies: tuple[str, ...] = ()
    owner: str = ""


class FlagDefinition(_Frozen):
    """One flag as configured; `key` is filled in from its mapping key."""

    key: str = ""
    state: FlagState
    default_variant: str = "off"
    variants: dict[str, Any] = Field(default_factory=lambda: {"on": True, "off": False})
    rollout: Rollout = Field(default_factory=Rollout)
    targeting_rules: tuple[TargetingRule, ...] = ()
    metadata: FlagMetadata = Field(default_factory=FlagMetadata)

    @model_validator(mode="wrap")
    @classmethod
    def _variants_exist(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        if isinstance(data, cls):
            return data  # validated when it was built (the loader reuses unchanged flags)
        flag = handler(data)
        named = {flag.default_variant, flag.rollout.variant}
        named.update(rule.variant for rule in flag.targeting_rules)
        unknown = sorted(named - set(flag.variants))
        if unknown:
            raise ValueError(f"variant(s) {', '.join(unknown)} not in variants")
        return flag

    @cached_property
    def content_json(self) -> bytes:
        """The definition as JSON, computed once: a reload reuses unchanged flags' objects."""
        return self.model_dump_json().encode()

    @property
    def phase(self) -> int | None:
        return self.metadata.phase

    @property
    def percentage(self) -> float:
        """The share of users served the rollout variant, as the config says (0..100)."""
        if self.state is FlagState.ENABLED:
            return 100.0
        if self.state is FlagState.DISABLED:
            return 0.0
        return self.rollout.percentage

    @property
    def ordered_rules(self) -> tuple[TargetingRule, ...]:
        return tuple(sorted(self.targeting_rules, key=lambda rule: -rule.priority))


class GlobalSettings(_Frozen):
    default_rollout_percentage: float = Field(default=10.0, ge=0.0, le=100.0)
    sticky_bucketing: bool = True
    evaluation_timeout_ms: int = Field(default=100, ge=1)
    metrics_enabled: bool = True
    hot_reload_enabled: bool = True
    rollout_steps: tuple[float, ...] = DEFAULT_ROLLOUT_STEPS
    safety_flags: tuple[str, ...] = ("rollback_mechanism", "performance_monitoring")

    @field_validator("rollout_steps")
    @classmethod
    def _steps_rise_within_range(cls, steps: tuple[float, ...]) -> tuple[float, ...]:
        if not steps or any(not 0 < s <= 100 for s in steps) or list(steps) != sorted(set(steps)):
            raise ValueError("rollout_steps must rise strictly within (0, 100]")
        return steps


class Phase(_Frozen):
    """One of the six technical-debt phases (the config's `phases` section)."""

    number: int = Field(ge=1, le=6)
    name: str
    planned_week: int = Field(ge=1)


class FlagConfig(_Frozen):
    """A whole configuration: base file merged with one environment's overrides."""

    version: str
    schema_version: str = ""
    environment: str = ""
    global_: GlobalSettings = Field(default_factory=GlobalSettings, alias="global")
    phases: tuple[Phase, ...] = ()
    #: The project's start date (`phases: {start: 2026-01-05, list: [...]}`): phase n is
    #: planned for week n counted from it. None in configs that list the phases only.
    phases_start: date | None = None
    flags: dict[FlagKey, FlagDefinition] = Field(default_factory=dict)

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _phases_mapping(cls, data: Any) -> Any:
        """`phases` is either the list of phases (older configs) or a mapping with a
        `start` date and that `list`; any other key of the mapping is refused."""
        if isinstance(data, dict) and isinstance(data.get("phases"), dict):
            section = dict(data["phases"])
            unknown = sorted(set(section) - {"start", "list"})
            if unknown:
                raise ValueError(
                    f"phases: unknown key(s) {', '.join(map(str, unknown))} "
                    "(expected start and list)"
                )
            data = {**data, "phases": section.get("list", ()), "phases_start": section.get("start")}
        return data

    @model_validator(mode="before")
    @classmethod
    def _keys_into_flags(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("flags"), dict):
            flags = {
                key: {**body, "key": key} if isinstance(body, dict) else body
                for key, body in data["flags"].items()
            }
            data = {**data, "flags": flags}
        return data

    @model_validator(mode="after")
    def _dependencies_exist(self) -> FlagConfig:
        for flag in self.flags.values():
            missing = [dep for dep in flag.metadata.dependencies if dep not in self.flags]
            if missing:
                raise ValueError(f"flag {flag.key}: unknown dependencies {', '.join(missing)}")
        return self

    @property
    def loaded_version(self) -> str:
        """`version` plus a hash of the whole merged content, e.g. `1.0.0+3fa2c1d9`: it
        changes with every edit (operators rarely bump `version`), so instances reporting
        it in `feature_flag_config_info` show whether a change has propagated."""
        digest = hashlib.sha256(self.model_dump_json(by_alias=True, exclude={"flags"}).encode())
        for key, flag in self.flags.items():
            digest.update(f"\0{key}\0".encode())
            digest.update(flag.content_json)
        return f"{self.version}+{digest.hexdigest()[:8]}"

    def flag(self, key: str) -> FlagDefinition:
        """The flag named `key`; raises KeyError for an unknown flag."""
        return self.flags[key]

    def phase_named(self, number: int) -> Phase | None:
        return next((phase for phase in self.phases if phase.number == number), None)


def on_for_nobody(config: FlagConfig) -> list[str]:
    """Keys of the flags whose rollout is a `user_list` naming no user: that rollout is
    on for nobody, almost always a list left out by mistake (the model still loads it)."""
    return [
        key
        for key, flag in config.flags.items()
        if flag.rollout.strategy is RolloutStrategy.USER_LIST and not flag.rollout.user_list
    ]
