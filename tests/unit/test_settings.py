from pathlib import Path

import pytest

from app.settings import FlagBackendKind, load_settings
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
    with pytest.raises(ValueError, match="prometheus_retries"):
        load_settings()


def test_server_address_defaults_to_this_machine_only(monkeypatch):
    assert load_settings().server_address == "127.0.0.1"
    monkeypatch.setenv("ROLLOUT_SERVER_ADDRESS", "0.0.0.0")
    assert load_settings().server_address == "0.0.0.0"
    assert load_settings(server_address=" ::1 ").server_address == "::1"
    with pytest.raises(ValueError, match=r"not an IP address: 'example\.com'"):
        load_settings(server_address="example.com")
