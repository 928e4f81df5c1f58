"""`serve` hands Streamlit its cookie secret from `STREAMLIT_SERVER_COOKIE_SECRET_FILE`,
in the environment only; both set or an unreadable file is refused without the secret."""

from __future__ import annotations

import pytest

from app.serve import COOKIE_SECRET, streamlit_env
from app.settings import SettingsInvalid

SECRET = "a-long-random-cookie-secret"


def test_the_cookie_secret_is_read_from_its_file(tmp_path):
    path = tmp_path / "cookie"
    path.write_text(SECRET + "\n")
    env = streamlit_env({"PATH": "/bin", f"{COOKIE_SECRET}_FILE": str(path)})
    assert env == {"PATH": "/bin", COOKIE_SECRET: SECRET}


def test_without_a_file_the_environment_is_unchanged():
    assert streamlit_env({COOKIE_SECRET: SECRET}) == {COOKIE_SECRET: SECRET}


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(SettingsInvalid) as refused:
        streamlit_env({f"{COOKIE_SECRET}_FILE": str(tmp_path / "nowhere")})
    assert refused.value.problems == [f"{COOKIE_SECRET}_FILE: no such file: {tmp_path / 'nowhere'}"]


def test_both_set_is_refused_without_the_secret(tmp_path):
    path = tmp_path / "cookie"
    path.write_text(SECRET)
    with pytest.raises(SettingsInvalid) as refused:
        streamlit_env({COOKIE_SECRET: SECRET, f"{COOKIE_SECRET}_FILE": str(path)})
    assert SECRET not in str(refused.value)
    assert str(refused.value) == f"{COOKIE_SECRET}: set both it and {COOKIE_SECRET}_FILE; keep one"
