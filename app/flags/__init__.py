"""Feature flags: the typed config model, its YAML loader and the reference evaluator.

The evaluator (with prometheus_client) is loaded on first use of one of its names: the
CLI and the flag backends import the model and loader through this package without it.
"""

from typing import TYPE_CHECKING

from app.flags.conditions import MAX_CONDITION_LENGTH, Condition, ConditionError, parse_condition
from app.flags.loader import (
    BUNDLED_CONFIG,
    ConfigInvalid,
    ConfigIssue,
    check_config,
    environments,
    load_config,
    override_path,
)
from app.flags.model import (
    DEFAULT_ROLLOUT_STEPS,
    FlagConfig,
    FlagDefinition,
    FlagMetadata,
    FlagState,
    GlobalSettings,
    GradualStep,
    Phase,
    Rollout,
    RolloutStrategy,
    TargetingRule,
)

if TYPE_CHECKING:
    from app.flags.evaluator import (
        CONFIG_RELOAD_ERRORS,
        EvaluationContext,
        EvaluationMetrics,
        EvaluationResult,
        FlagEvaluator,
        Reason,
        bucket,
        evaluate,
    )

_EVALUATOR_NAMES = frozenset(
    {
        "CONFIG_RELOAD_ERRORS",
        "EvaluationContext",
        "EvaluationMetrics",
        "EvaluationResult",
        "FlagEvaluator",
        "Reason",
        "bucket",
        "evaluate",
    }
)


def __getattr__(name: str) -> object:
    if name in _EVALUATOR_NAMES:
        from app.flags import evaluator

        return getattr(evaluator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BUNDLED_CONFIG",
    "CONFIG_RELOAD_ERRORS",
    "DEFAULT_ROLLOUT_STEPS",
    "MAX_CONDITION_LENGTH",
    "Condition",
    "ConditionError",
    "ConfigInvalid",
    "ConfigIssue",
    "EvaluationContext",
    "EvaluationMetrics",
    "EvaluationResult",
    "FlagConfig",
    "FlagDefinition",
    "FlagEvaluator",
    "FlagMetadata",
    "FlagState",
    "GlobalSettings",
    "GradualStep",
    "Phase",
    "Reason",
    "Rollout",
    "RolloutStrategy",
    "TargetingRule",
    "bucket",
    "check_config",
    "environments",
    "evaluate",
    "load_config",
    "override_path",
    "parse_condition",
]
