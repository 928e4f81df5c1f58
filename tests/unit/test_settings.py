from pathlib import Path

import pytest

from app.settings import FlagBackendKind, SettingsInvalid, load_settings, redacted_url
from queries.names import MetricPreset


@pytest.fixture(autouse=True)
def clean_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_rollout_environment
) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_embedded_defaults_need_nothing(tmp_path):
    settings = load_settings()
    assert settings.prometheus_url is None
    assert settings.flag_backend is FlagBackendKind.YAML
    assert settings.resolved_flags_file == Path(".rollout/feature_flags.yaml")
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / '.rollout' / 'metrics.db'}"
    assert settings.metric_names.evaluations == "feature_flag_evaluations_total"


def test_environment_variables_then_secrets_file(tmp_path, monkeypatch):
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text(
        '[rollout]\nprometheus_url = "http://user:hunter2@prom:9090"\nenvironment = "staging"\n'
        'metric_preset = "usage"\n'
    )
    settings = load_settings()
    assert settings.environment == "staging"
    assert settings.metric_preset is MetricPreset.USAGE
    assert settings.metric_names.flag_label == "flag_name"
    assert settings.prometheus_url is not None
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.model_dump())
    monkeypatch.setenv("ROLLOUT_ENVIRONMENT", "production")
    assert load_settings().environment == "production"  # the environment wins
    assert load_settings(environment="dev").environment == "dev"  # arguments win over both


def test_out_of_range_settings_are_refused(monkeypatch):
    monkeypatch.setenv("ROLLOUT_PROMETHEUS_RETRIES", "50")
    with pytest.raises(
        ValueError, match="ROLLOUT_PROMETHEUS_RETRIES: Input should be less than or equal to 5"
    ):
        load_settings()


def test_an_invalid_url_is_named_without_its_credentials(monkeypatch):
    monkeypatch.setenv("ROLLOUT_PROMETHEUS_URL", "ftp://olga:hunter2@prom:9090/")
    monkeypatch.setenv("ROLLOUT_DATABASE_URL", "nosuchdb://olga:hunter2@db/x")
    monkeypatch.setenv("ROLLOUT_SPARKLINE_MINUTES", "1e9")
    with pytest.raises(SettingsInvalid) as refused:
        load_settings()
    assert refused.value.problems == [
        "ROLLOUT_DATABASE_URL: not an SQLAlchemy database URL (nosuchdb://***@db/x)",
        "ROLLOUT_PROMETHEUS_URL: must be an http:// or https:// URL with a host "
        "(ftp://***@prom:9090/)",
        "ROLLOUT_SPARKLINE_MINUTES: Input should be a valid integer, unable to parse string "
        "as an integer (got '1e9')",
    ]


def test_credentials_are_redacted_even_from_a_url_that_does_not_parse():
    assert redacted_url("http://u:p@[::1") == "http://***@[::1"
    assert redacted_url("postgresql+psycopg://u:p@db/x") == "postgresql+psycopg://***@db/x"
    assert redacted_url("http://prom:9090/a@b") == "http://prom:9090/a@b"  # a path, no user
    assert redacted_url("no scheme u:p@h") == "no scheme u:p@h"


def test_server_address_defaults_to_this_machine_only(monkeypatch):
    assert load_settings().server_address == "127.0.0.1"
    monkeypatch.setenv("ROLLOUT_SERVER_ADDRESS", "0.0.0.0")
    assert load_settings().server_address == "0.0.0.0"
    assert load_settings(server_address=" ::1 ").server_address == "::1"
    with pytest.raises(ValueError, match=r"not an IP address: 'example\.com'"):
        load_settings(server_address="example.com")
