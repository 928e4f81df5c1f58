"""Loading the YAML config: the bundled demo, environment overrides, and located errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from app.flags.loader import (
    BUNDLED_CONFIG,
    ConfigInvalid,
    ConfigIssue,
    check_config,
    environments,
    load_config,
)
from app.flags.model import FlagState, RolloutStrategy, on_for_nobody

PHASE_NAMES = [
    "Configuration Externalization",
    "Health Check Implementation",
    "Metrics & Observability",
    "Code Quality & Refactoring",
    "Agent Integration Testing",
    "Final Validation & Documentation",
]

# The seed lists exactly 20 flags: 16 across the six phases and 4 cross-cutting.
SEED_FLAG_COUNT = 20


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def _issues(path: Path, environment: str | None = None) -> tuple[ConfigIssue, ...]:
    with pytest.raises(ConfigInvalid) as invalid:
        load_config(path, environment)
    return invalid.value.issues


VALID_BASE = """
version: "7"
flags:
  main:
    state: rollout
    variants: {on: true, off: false}
    rollout: {percentage: 20}
  helper:
    state: disabled
    metadata:
      dependencies: [main]
"""


# --- the bundled demo config -------------------------------------------------------


def test_bundled_config_has_the_seed_flags_and_six_phases() -> None:
    config = load_config(BUNDLED_CONFIG)
    assert len(config.flags) == SEED_FLAG_COUNT
    assert [phase.name for phase in config.phases] == PHASE_NAMES
    assert [phase.planned_week for phase in config.phases] == [1, 2, 3, 4, 5, 6]
    assert config.schema_version == "2025.1"
    assert config.global_.safety_flags == ("rollback_mechanism", "performance_monitoring")
    assert config.flag("phase1_config_externalization").percentage == 25.0
    assert config.flag("phase1_pydantic_settings").percentage == 30.0
    assert config.flag("phase2_health_checks").percentage == 15.0
    assert config.flag("phase3_metrics_observability").state is FlagState.DISABLED
    assert config.flag("phase3_metrics_observability").rollout.percentage == 10.0
    assert config.flag("rollback_mechanism").state is FlagState.ENABLED
    assert config.flag("ab_testing").percentage == 50.0
    # `on`/`off` stay variant names instead of YAML 1.1 booleans.
    assert config.flag("phase1_config_externalization").variants == {"on": True, "off": False}


def test_bundled_config_uses_every_strategy_and_chains_phase_dependencies() -> None:
    config = load_config(BUNDLED_CONFIG)
    strategies = {flag.rollout.strategy for flag in config.flags.values()}
    assert strategies == set(RolloutStrategy)
    assert config.flag("phase2_health_checks").metadata.dependencies == (
        "phase1_config_externalization",
    )
    assert config.flag("phase6_final_validation").metadata.dependencies == (
        "phase5_agent_integration",
    )
    assert config.flag("ab_testing").phase is None


def test_environments_of_the_bundled_config() -> None:
    assert environments(BUNDLED_CONFIG) == ["production", "staging"]


def test_staging_override_merges_over_the_base() -> None:
    config = load_config(BUNDLED_CONFIG, "staging")
    assert config.environment == "staging"
    assert config.flag("phase1_config_externalization").state is FlagState.ENABLED
    assert config.flag("phase1_pydantic_settings").percentage == 100.0
    assert config.flag("phase2_health_checks").percentage == 50.0
    assert config.flag("phase3_metrics_observability").state is FlagState.ROLLOUT
    assert config.flag("phase3_metrics_observability").percentage == 10.0
    # Deep merge: only `percentage` was overridden, the base's rules and metadata stay.
    health = config.flag("phase2_health_checks")
    assert [rule.name for rule in health.targeting_rules] == ["admin_users", "beta_users"]
    assert health.metadata.phase == 2
    assert config.flag("phase2_ml_model_health").rollout.strategy is RolloutStrategy.USER_LIST


def test_production_override_is_behind_the_base() -> None:
    config = load_config(BUNDLED_CONFIG, "production")
    assert config.environment == "production"
    assert config.flag("phase1_config_externalization").percentage == 10.0
    assert config.flag("phase2_health_checks").percentage == 5.0
    assert config.flag("ab_testing").percentage == 25.0
    assert config.flag("ab_testing").rollout.variant == "treatment"
    assert config.flag("rollback_mechanism").state is FlagState.ENABLED


def test_environment_without_override_file_gets_the_base() -> None:
    config = load_config(BUNDLED_CONFIG, "development")
    assert config.environment == "development"
    assert config.flag("phase1_config_externalization").percentage == 25.0


def test_check_config_on_the_bundled_config_is_clean() -> None:
    assert check_config(BUNDLED_CONFIG) == []


# --- located errors ----------------------------------------------------------------


def test_bad_indentation_is_a_syntax_error_at_its_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "flags.yaml",
        """
        version: "1"
        flags:
          main:
            state: rollout
             percentage: 5
        """,
    )
    (issue,) = _issues(path)
    assert (issue.file, issue.line) == (path, 5)
    assert "YAML syntax error" in issue.message


def test_unknown_state(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "flags.yaml",
        """
        version: "1"
        flags:
          main:
            state: rolout
        """,
    )
    (issue,) = _issues(path)
    assert (issue.file, issue.line, issue.flag) == (path, 4, "main")
    assert issue.message.startswith("state: Input should be")
    assert "'rolout'" in issue.message
    assert str(issue) == f"{path}:4: main: {issue.message}"


def test_percentage_over_100(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "flags.yaml",
        """
        version: "1"
        flags:
          main:
            state: rollout
            rollout:
              strategy: percentage
              percentage: 150
        """,
    )
    (issue,) = _issues(path)
    assert (issue.file, issue.line, issue.flag) == (path, 7, "main")
    assert "rollout.percentage" in issue.message
    assert "less than or equal to 100" in issue.message


def test_duplicate_flag_key(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "flags.yaml",
        """
        version: "1"
        flags:
          main:
            state: enabled
          main:
            state: disabled
        """,
    )
    (issue,) = _issues(path)
    assert (issue.file, issue.line, issue.flag) == (path, 5, "main")
    assert issue.message == "duplicate key 'main' (first set at line 3)"


def test_duplicate_key_inside_a_flag(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "flags.yaml",
        """
        version: "1"
        flags:
          main:
            state: enabled
            rollout:
              percentage: 10
              percentage: 20
        """,
    )
    (issue,) = _issues(path)
    assert (issue.file, issue.line, issue.flag) == (path, 7, "main")
    assert "duplicate key 'percentage'" in issue.message


def test_condition_calling_open(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "flags.yaml",
        """
        version: "1"
        flags:
          main:
            state: enabled
            targeting_rules:
              - name: sneaky
                variant: "on"
              - name: evil
                condition: "open('x')"
                variant: "on"
        """,
    )
    issues = _issues(path)
    by_line = {issue.line: issue for issue in issues}
    # The first rule lacks its condition: reported at the rule's own line.
    assert by_line[6].message.startswith("targeting_rules.0.condition: Field required")
    assert by_line[9].flag == "main"
    assert "function call 'open' is not allowed" in by_line[9].message


def test_unknown_dependency(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "flags.yaml",
        """
        version: "1"
        flags:
          main:
            state: enabled
          helper:
            state: enabled
            metadata:
              dependencies: [main, mian]
        """,
    )
    (issue,) = _issues(path)
    assert (issue.file, issue.line, issue.flag) == (path, 8, "helper")
    assert issue.message == "unknown dependency 'mian'"


def test_unknown_variant(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "flags.yaml",
        """
        version: "1"
        flags:
          main:
            state: enabled
            default_variant: beta
        """,
    )
    (issue,) = _issues(path)
    assert (issue.line, issue.flag) == (3, "main")
    assert "beta not in variants" in issue.message


def test_all_issues_are_reported_at_once(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "flags.yaml",
        """
        version: "1"
        flags:
          one:
            state: rolout
          two:
            state: enabled
            state: enabled
          three:
            state: rollout
            rollout: {percentage: 150}
            metadata: {dependencies: [nowhere]}
        """,
    )
    located = {(issue.line, issue.flag) for issue in _issues(path)}
    assert located == {(4, "one"), (7, "two"), (10, "three"), (11, "three")}


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    path = _write(tmp_path, "flags.yaml", "- just\n- a list\n")
    (issue,) = _issues(path)
    assert issue.message == "top level must be a mapping, found a list"


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path = _write(tmp_path, "flags.yaml", VALID_BASE + "flgas: {}\n")
    (issue,) = _issues(path)
    assert (issue.line, issue.flag) == (11, None)
    assert issue.message.startswith("flgas: Extra inputs are not permitted")


def test_missing_file(tmp_path: Path) -> None:
    (issue,) = _issues(tmp_path / "absent.yaml")
    assert issue.line is None
    assert "cannot read file" in issue.message


# --- overrides ---------------------------------------------------------------------


def test_override_changes_only_what_it_lists(tmp_path: Path) -> None:
    base = _write(tmp_path, "flags.yaml", VALID_BASE)
    _write(
        tmp_path,
        "flags_canary.yaml",
        """
        flags:
          main:
            rollout: {percentage: 60}
        """,
    )
    config = load_config(base, "canary")
    assert config.flag("main").percentage == 60.0
    assert config.flag("main").variants == {"on": True, "off": False}
    assert config.flag("helper").metadata.dependencies == ("main",)
    assert load_config(base).flag("main").percentage == 20.0


def test_error_in_override_names_the_override_file(tmp_path: Path) -> None:
    base = _write(tmp_path, "flags.yaml", VALID_BASE)
    override = _write(
        tmp_path,
        "flags_staging.yaml",
        """
        # staging runs ahead
        flags:
          main:
            state: rolout
        """,
    )
    (issue,) = _issues(base, "staging")
    assert (issue.file, issue.line, issue.flag) == (override, 4, "main")
    assert load_config(base).flag("main").state is FlagState.ROLLOUT


def test_error_in_base_key_under_override_names_the_base(tmp_path: Path) -> None:
    base = _write(
        tmp_path,
        "flags.yaml",
        """
        version: "1"
        flags:
          main:
            state: rollout
            rollout: {strategy: percentage, percentage: 150}
        """,
    )
    _write(tmp_path, "flags_staging.yaml", "flags:\n  main:\n    state: enabled\n")
    (issue,) = _issues(base, "staging")
    assert (issue.file, issue.line) == (base, 5)


def test_replaced_list_maps_to_the_override(tmp_path: Path) -> None:
    base = _write(
        tmp_path,
        "flags.yaml",
        """
        version: "1"
        flags:
          main:
            state: enabled
            targeting_rules:
              - {name: a, condition: "user_type == 'a'", variant: "on"}
              - {name: b, condition: "user_type == 'b'", variant: "on"}
        """,
    )
    override = _write(
        tmp_path,
        "flags_prod.yaml",
        """
        flags:
          main:
            targeting_rules:
              - name: c
                variant: "on"
        """,
    )
    (issue,) = _issues(base, "prod")
    assert (issue.file, issue.line) == (override, 4)
    assert "condition: Field required" in issue.message


def test_syntax_error_in_override(tmp_path: Path) -> None:
    base = _write(tmp_path, "flags.yaml", VALID_BASE)
    override = _write(tmp_path, "flags_staging.yaml", "flags:\n  main: [unclosed\n")
    (issue,) = _issues(base, "staging")
    assert issue.file == override
    assert issue.line == 3


def test_check_config_covers_every_override_once(tmp_path: Path) -> None:
    base = _write(tmp_path, "flags.yaml", VALID_BASE)
    staging = _write(tmp_path, "flags_staging.yaml", "flags: {main: {state: rolout}}\n")
    _write(tmp_path, "flags_production.yaml", "flags: {main: {rollout: {percentage: 5}}}\n")
    issues = check_config(base)
    assert [(issue.file, issue.line, issue.flag) for issue in issues] == [(staging, 1, "main")]
    assert environments(base) == ["production", "staging"]


def test_invalid_environment_name(tmp_path: Path) -> None:
    base = _write(tmp_path, "flags.yaml", VALID_BASE)
    (issue,) = _issues(base, "../etc")
    assert "invalid environment name" in issue.message


def test_config_invalid_lists_issues_one_per_line(tmp_path: Path) -> None:
    error = ConfigInvalid(
        [
            ConfigIssue(tmp_path / "a.yaml", 3, "main", "bad"),
            ConfigIssue(tmp_path / "a.yaml", None, None, "worse"),
        ]
    )
    assert str(error).splitlines() == [
        f"{tmp_path}/a.yaml:3: main: bad",
        f"{tmp_path}/a.yaml: worse",
    ]


def test_a_user_list_rollout_listing_nobody_still_loads_but_check_config_names_it(
    tmp_path: Path,
) -> None:
    path = _write(
        tmp_path,
        "flags.yaml",
        """
        version: "1"
        flags:
          beta:
            state: rollout
            rollout: {strategy: user_list}
          listed:
            state: rollout
            rollout: {strategy: user_list, user_list: [ana]}
        """,
    )
    config = load_config(path)
    assert on_for_nobody(config) == ["beta"]
    (issue,) = check_config(path)
    assert (issue.file, issue.line, issue.flag) == (path, 5, "beta")
    assert "user_list with no user_list (in the base config)" in issue.message
