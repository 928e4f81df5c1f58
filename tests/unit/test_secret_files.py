"""Every secret also reads `ROLLOUT_<NAME>_FILE`: the file's content without its trailing
newline; both set, a file that cannot be read, or a file given for a setting that is not a
secret is an invalid setting named without the secret. And `ROLLOUT_AUTO_MIGRATE`."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import SECRET_FILE_SETTINGS, SettingsInvalid, load_settings, read_secret_file

PASSWORD = "hunter2-secret"


@pytest.fixture(autouse=True)
def clean_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_rollout_environment
) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _secret(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content)
    return path


def _problems(**environment: str) -> list[str]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environment.items():
            patch.setenv(name, value)
        with pytest.raises(SettingsInvalid) as refused:
            load_settings()
    return refused.value.problems


def test_the_database_url_is_read_from_its_file(tmp_path, monkeypatch):
    url = f"postgresql+psycopg://rollout:{PASSWORD}@db.internal:5432/rollout"
    monkeypatch.setenv("ROLLOUT_DATABASE_URL_FILE", str(_secret(tmp_path, "db", url + "\n")))
    settings = load_settings()
    assert settings.resolved_database_url == url
    assert PASSWORD not in repr(settings)


def test_each_secret_is_read_from_its_file(tmp_path, monkeypatch):
    monkeypatch.setenv(
        "ROLLOUT_PROMETHEUS_URL_FILE", str(_secret(tmp_path, "p", "http://u:pw@prom:9090\n"))
    )
    monkeypatch.setenv("ROLLOUT_UNLEASH_TOKEN_FILE", str(_secret(tmp_path, "t", "*:*.abc\r\n")))
    monkeypatch.setenv(
        "ROLLOUT_WEBHOOK_URLS_FILE", str(_secret(tmp_path, "w", '{"audit": "https://a.example/h"}'))
    )
    monkeypatch.setenv(
        "ROLLOUT_WEBHOOK_URL_ONCALL_FILE", str(_secret(tmp_path, "o", "https://hooks.example/x\n"))
    )
    monkeypatch.setenv("ROLLOUT_WEBHOOKS", "oncall=slack,audit=json")
    settings = load_settings()
    assert settings.prometheus_url is not None
    assert settings.prometheus_url.get_secret_value() == "http://u:pw@prom:9090"
    assert settings.unleash_token is not None
    assert settings.unleash_token.get_secret_value() == "*:*.abc"
    assert {name: url.get_secret_value() for name, url in settings.webhook_urls.items()} == {
        "audit": "https://a.example/h",
        "oncall": "https://hooks.example/x",
    }  # the table and the one-per-webhook variables add up, as the plain variables do
    assert set(SECRET_FILE_SETTINGS) == {
        "database_url",
        "prometheus_url",
        "unleash_token",
        "webhook_urls",
    }


def test_only_the_trailing_newline_is_stripped(tmp_path):
    path = _secret(tmp_path, "token", "  a token with spaces \n\n")
    assert read_secret_file("ROLLOUT_UNLEASH_TOKEN_FILE", str(path)) == (
        "  a token with spaces ",
        None,
    )


def test_a_missing_file_is_named_by_its_setting(tmp_path):
    missing = tmp_path / "nowhere"
    assert _problems(ROLLOUT_DATABASE_URL_FILE=str(missing)) == [
        f"ROLLOUT_DATABASE_URL_FILE: no such file: {missing}"
    ]


def test_a_directory_or_an_empty_file_is_refused(tmp_path):
    empty = _secret(tmp_path, "empty", "\n")
    assert _problems(
        ROLLOUT_DATABASE_URL_FILE=str(tmp_path), ROLLOUT_UNLEASH_TOKEN_FILE=str(empty)
    ) == [
        f"ROLLOUT_DATABASE_URL_FILE: {tmp_path} is a directory, not a file",
        f"ROLLOUT_UNLEASH_TOKEN_FILE: {empty} is empty",
    ]


def test_a_file_that_is_not_text_is_refused_without_its_bytes(tmp_path):
    path = tmp_path / "binary"
    path.write_bytes(b"\xff\xfe" + PASSWORD.encode())
    problems = _problems(ROLLOUT_UNLEASH_TOKEN_FILE=str(path))
    assert problems == [f"ROLLOUT_UNLEASH_TOKEN_FILE: {path} is not UTF-8 text"]


def test_both_set_is_refused_without_either_value(tmp_path):
    path = _secret(tmp_path, "db", f"sqlite:///{PASSWORD}.db")
    problems = _problems(
        ROLLOUT_DATABASE_URL=f"sqlite:///{PASSWORD}.db", ROLLOUT_DATABASE_URL_FILE=str(path)
    )
    assert problems == ["ROLLOUT_DATABASE_URL: set both it and ROLLOUT_DATABASE_URL_FILE; keep one"]


def test_a_webhook_url_set_both_ways_is_refused(tmp_path):
    path = _secret(tmp_path, "hook", "https://hooks.example/x")
    problems = _problems(
        ROLLOUT_WEBHOOK_URL_ONCALL="https://hooks.example/y",
        ROLLOUT_WEBHOOK_URL_ONCALL_FILE=str(path),
    )
    assert problems == [
        "ROLLOUT_WEBHOOK_URL_ONCALL: set both it and ROLLOUT_WEBHOOK_URL_ONCALL_FILE; keep one"
    ]


def test_a_missing_webhook_url_file_is_named(tmp_path):
    missing = tmp_path / "hook"
    assert _problems(ROLLOUT_WEBHOOK_URL_ONCALL_FILE=str(missing)) == [
        f"ROLLOUT_WEBHOOK_URL_ONCALL_FILE: no such file: {missing}"
    ]


def test_an_empty_plain_variable_does_not_count_as_set(tmp_path, monkeypatch):
    """Compose files often pass `ROLLOUT_DATABASE_URL=` through empty: the file wins."""
    monkeypatch.setenv("ROLLOUT_DATABASE_URL", "")
    path = _secret(tmp_path, "db", "sqlite:///from-file.db\n")
    monkeypatch.setenv("ROLLOUT_DATABASE_URL_FILE", str(path))
    assert load_settings().resolved_database_url == "sqlite:///from-file.db"


def test_a_bad_value_in_a_file_is_reported_without_its_credentials(tmp_path):
    path = _secret(tmp_path, "db", f"nosuchdb://olga:{PASSWORD}@db/x\n")
    problems = _problems(ROLLOUT_DATABASE_URL_FILE=str(path))
    assert problems == [
        "ROLLOUT_DATABASE_URL: not an SQLAlchemy database URL (nosuchdb://***@db/x)"
    ]
    assert PASSWORD not in "\n".join(problems)


def test_a_setting_that_is_not_a_secret_is_not_read_from_a_file(tmp_path):
    path = _secret(tmp_path, "env", "staging")
    problems = _problems(ROLLOUT_ENVIRONMENT_FILE=str(path))
    assert len(problems) == 1
    assert problems[0].startswith("ROLLOUT_ENVIRONMENT_FILE: only secrets are read from a file")
    assert problems[0].endswith("set ROLLOUT_ENVIRONMENT itself")


def test_settings_named_like_files_are_still_plain_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("ROLLOUT_FLAGS_FILE", str(tmp_path / "flags.yaml"))
    monkeypatch.setenv("ROLLOUT_UNLEASH_METADATA_FILE", str(tmp_path / "meta.yaml"))
    settings = load_settings()
    assert settings.flags_file == tmp_path / "flags.yaml"
    assert settings.unleash_metadata_file == tmp_path / "meta.yaml"


@pytest.mark.parametrize(("value", "expected"), [(None, True), ("false", False), ("1", True)])
def test_auto_migrate(monkeypatch, value, expected):
    if value is not None:
        monkeypatch.setenv("ROLLOUT_AUTO_MIGRATE", value)
    assert load_settings().auto_migrate is expected


def test_auto_migrate_refuses_what_is_not_a_boolean(monkeypatch):
    monkeypatch.setenv("ROLLOUT_AUTO_MIGRATE", "sometimes")
    with pytest.raises(SettingsInvalid, match="ROLLOUT_AUTO_MIGRATE: Input should be a valid"):
        load_settings()
