"""ROLLOUT_WEBHOOKS names the webhooks and their kind; each URL is a secret read from
ROLLOUT_WEBHOOK_URL_<NAME> or `[rollout.webhooks]` in secrets.toml, never quoted."""

from pathlib import Path

import pytest

from app.settings import SettingsInvalid, WebhookKind, load_settings

SLACK_URL = "https://hooks.slack.example/services/T000/B000/sEcReTtOkEn"
AUDIT_URL = "http://audit.internal:8080/hooks/rollout?token=hunter2"


@pytest.fixture(autouse=True)
def clean_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_rollout_environment
) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _secrets(tmp_path: Path, text: str) -> None:
    (tmp_path / ".streamlit").mkdir(exist_ok=True)
    (tmp_path / ".streamlit" / "secrets.toml").write_text(text)


def _refusal(**overrides: object) -> str:
    with pytest.raises(SettingsInvalid) as refused:
        load_settings(**overrides)
    return "\n".join(refused.value.problems)


def test_no_webhooks_by_default() -> None:
    settings = load_settings()
    assert settings.webhooks == {}
    assert settings.public_url is None
    assert settings.notify_manual_actions is False


def test_names_and_kinds_from_the_environment_urls_from_the_secrets_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _secrets(
        tmp_path,
        f'[rollout]\nenvironment = "staging"\n[rollout.webhooks]\noncall = "{SLACK_URL}"\n',
    )
    monkeypatch.setenv("ROLLOUT_WEBHOOKS", "OnCall=slack, audit=JSON")
    monkeypatch.setenv("ROLLOUT_WEBHOOK_URL_AUDIT", AUDIT_URL)
    monkeypatch.setenv("ROLLOUT_PUBLIC_URL", "https://rollout.example.com/dash/")
    monkeypatch.setenv("ROLLOUT_NOTIFY_MANUAL_ACTIONS", "true")
    settings = load_settings()
    assert settings.environment == "staging"  # the rest of [rollout] still reads
    assert settings.webhooks == {"oncall": WebhookKind.SLACK, "audit": WebhookKind.JSON}
    urls = {name: url.get_secret_value() for name, url in settings.webhook_urls.items()}
    assert urls == {"oncall": SLACK_URL, "audit": AUDIT_URL}
    assert settings.public_url == "https://rollout.example.com/dash"
    assert settings.notify_manual_actions is True
    shown = repr(settings) + str(settings.model_dump())
    assert "sEcReTtOkEn" not in shown and "hunter2" not in shown


def test_the_environment_variable_wins_over_the_secrets_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _secrets(tmp_path, '[rollout.webhooks]\noncall = "https://old.example/hook"\n')
    monkeypatch.setenv("ROLLOUT_WEBHOOKS", "oncall=slack")
    monkeypatch.setenv("ROLLOUT_WEBHOOK_URL_ONCALL", SLACK_URL)
    assert load_settings().webhook_urls["oncall"].get_secret_value() == SLACK_URL


def test_a_named_webhook_without_a_url_is_named_with_where_to_put_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ROLLOUT_WEBHOOKS", "oncall=slack,audit=json")
    monkeypatch.setenv("ROLLOUT_WEBHOOK_URL_AUDIT", AUDIT_URL)
    problems = _refusal()
    assert problems == (
        "ROLLOUT_WEBHOOKS: webhook 'oncall' has no URL: set ROLLOUT_WEBHOOK_URL_ONCALL or "
        '`oncall = "https://…"` under [rollout.webhooks] in .streamlit/secrets.toml'
    )
    assert "hunter2" not in problems


def test_an_unknown_kind_is_refused_naming_the_webhook(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLOUT_WEBHOOKS", "oncall=teams")
    monkeypatch.setenv("ROLLOUT_WEBHOOK_URL_ONCALL", SLACK_URL)
    assert _refusal() == "ROLLOUT_WEBHOOKS: webhook 'oncall': the kind must be json or slack"


@pytest.mark.parametrize(
    "value",
    [
        "oncall",  # no kind
        f"oncall={SLACK_URL}",  # the URL where the kind goes
        SLACK_URL,  # the URL instead of the names
        "on-call=slack",  # not usable in ROLLOUT_WEBHOOK_URL_<NAME>
    ],
)
def test_a_malformed_list_is_refused_without_quoting_it(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("ROLLOUT_WEBHOOKS", value)
    problems = _refusal()
    assert problems.startswith("ROLLOUT_WEBHOOKS: ")
    assert "sEcReTtOkEn" not in problems and "hooks.slack" not in problems


def test_a_url_that_is_not_http_is_refused_without_showing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ROLLOUT_WEBHOOKS", "oncall=slack")
    monkeypatch.setenv("ROLLOUT_WEBHOOK_URL_ONCALL", "ftp://files.example/sEcReTtOkEn")
    problems = _refusal()
    assert problems == (
        "ROLLOUT_WEBHOOKS: webhook 'oncall': its URL is not an http:// or https:// URL "
        "with a host (a secret: not shown)"
    )


def test_a_url_of_the_wrong_type_names_its_variable_without_quoting_it(tmp_path: Path) -> None:
    _secrets(tmp_path, "[rollout.webhooks]\noncall = 12345\n")
    problems = _refusal()
    assert problems.startswith("ROLLOUT_WEBHOOK_URL_ONCALL: ")
    assert "12345" not in problems


def test_a_public_url_must_be_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLOUT_PUBLIC_URL", "rollout.example.com")
    assert _refusal().startswith("ROLLOUT_PUBLIC_URL: must be an http:// or https:// URL")
