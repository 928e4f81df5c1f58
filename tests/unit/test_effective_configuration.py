"""What `serve` and `autopilot` say they run on at start: every source named, no secret
shown (app/settings.py `effective_configuration`, `masked_url`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import effective_configuration, load_settings, masked_url

PASSWORD = "Pa55-w0rd-xyz"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            f"postgresql+psycopg://rollout:{PASSWORD}@db.internal:5432/rollout",
            "postgresql+psycopg://rollout:***@db.internal:5432/rollout",
        ),
        (
            f"postgresql+psycopg://db/rollout?user=r&password={PASSWORD}",
            "postgresql+psycopg://db/rollout?password=%2A%2A%2A&user=r",
        ),
        ("sqlite:////var/lib/rollout/metrics.db", "sqlite:////var/lib/rollout/metrics.db"),
        (f"https://user:{PASSWORD}@prom:9090/", "https://user:***@prom:9090/"),
        (f"https://{PASSWORD}@prom/api?token={PASSWORD}", "https://***@prom/api?***"),
        ("http://prometheus:9090", "http://prometheus:9090"),
    ],
)
def test_masked_urls_keep_where_and_hide_credentials(url: str, shown: str) -> None:
    assert masked_url(url) == shown
    assert PASSWORD not in masked_url(url)


def test_the_configuration_names_each_source_and_hides_secrets(
    tmp_path: Path, no_rollout_environment: None
) -> None:
    settings = load_settings(
        state_dir=tmp_path,
        database_url=f"postgresql+psycopg://rollout:{PASSWORD}@db:5432/rollout",
        prometheus_url=f"https://reader:{PASSWORD}@prometheus.internal/",
        approval_environments=["staging", "production"],
        webhooks={"oncall": "slack"},
        webhook_urls={"oncall": f"https://hooks.example.com/{PASSWORD}"},
        autopilot_metrics_port=9465,
        autopilot_metrics_address="0.0.0.0",
        log_format="json",
    )
    shown = dict(effective_configuration(settings))
    assert shown == {
        "environment": "production",
        "metrics source": "prometheus https://reader:***@prometheus.internal/, preset seed",
        "database": "postgresql+psycopg://rollout:***@db:5432/rollout",
        "flag backend": f"yaml {tmp_path / 'feature_flags.yaml'}",
        "approval environments": "production, staging",
        "webhooks": "oncall (slack)",
        "autopilot": "one tick every 30 s, lease 90 s, metrics on 0.0.0.0:9465",
        "log format": "json",
    }
    assert PASSWORD not in repr(effective_configuration(settings))


def test_bad_log_format_and_metrics_port_are_refused(no_rollout_environment: None) -> None:
    from app.settings import SettingsInvalid

    with pytest.raises(SettingsInvalid) as error:
        load_settings(log_format="xml", autopilot_metrics_port=0, autopilot_metrics_address="host")
    assert [p.split(":")[0] for p in error.value.problems] == [
        "ROLLOUT_AUTOPILOT_METRICS_PORT",
        "ROLLOUT_AUTOPILOT_METRICS_ADDRESS",
        "ROLLOUT_LOG_FORMAT",
    ]
