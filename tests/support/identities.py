"""Who the tests act as: `OPERATOR`, the operator of every test that is not about who
acts; and the identity cookie Streamlit sets after an OIDC login (`_streamlit_user`),
signed with a dashboard's `cookie_secret`: the shortcut for tests that are not about
signing in (`forge_sign_in`, described in the module docstring of
`tests/support/oidc.py`). This relies on a Streamlit internal (`create_signed_value` and
the cookie's payload); `tests/unit/test_forged_identity.py` pins both, so an upgrade that
changes them fails there, not as a mysterious anonymous page.

The page must be opened at `http://localhost:<port>`: the cookie names that origin, and
Streamlit ignores a cookie whose origin is not the page's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from streamlit.web.server.starlette.starlette_app_utils import create_signed_value

from app.rollout.roles import Identity, Role

__all__ = [
    "COOKIE_NAME",
    "COOKIE_SECRET",
    "OPERATOR",
    "identity_cookie",
    "user_cookie_value",
]

#: the operator of every test that is not about who acts
OPERATOR = Identity("olga", Role.OPERATOR, "test")

COOKIE_NAME = "_streamlit_user"
#: test-only: signs the forged cookies; never a real deployment's secret
COOKIE_SECRET = "rollout-tests-cookie-secret-0123456789abcdef"


def user_cookie_value(
    email: str,
    origin: str,
    groups: Sequence[str] = (),
    secret: str = COOKIE_SECRET,
) -> str:
    """The signed `_streamlit_user` value Streamlit sets after an OIDC login of `email`."""
    payload = {
        "sub": email,
        "email": email,
        "name": email.split("@")[0],
        "groups": list(groups),
        "origin": origin,
        "is_logged_in": True,
        "provider": "default",
    }
    return create_signed_value(secret, COOKIE_NAME, json.dumps(payload)).decode()


def identity_cookie(
    email: str, origin: str, groups: Sequence[str] = (), secret: str = COOKIE_SECRET
) -> dict[str, object]:
    """The Playwright cookie of `email`, signed in at `origin` (`http://localhost:PORT`)
    with `secret` (the dashboard's `cookie_secret`)."""
    return {
        "name": COOKIE_NAME,
        "value": user_cookie_value(email, origin, groups, secret),
        "url": origin,
        "httpOnly": True,
        "sameSite": "Lax",
    }
