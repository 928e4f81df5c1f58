"""Feature flags: the typed config model and its YAML loader.

The reference evaluator (which brings prometheus_client) is imported from
`app.flags.evaluator` by what uses it: the CLI and the flag backends never load it.
"""

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

__all__ = [
    "BUNDLED_CONFIG",
    "DEFAULT_ROLLOUT_STEPS",
    "MAX_CONDITION_LENGTH",
    "Condition",
    "ConditionError",
    "ConfigInvalid",
    "ConfigIssue",
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
    "check_config",
    "environments",
    "load_config",
    "override_path",
    "parse_condition",
]
