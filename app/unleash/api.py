"""A small client for an Unleash server's HTTP API: JSON in and out, explicit timeouts,
errors a person can read, and the token in no message, log or exception.

Only the standard library: the CLI imports it on every command that acts.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

from app.errors import RolloutError
from queries.source import SourceUnavailable

__all__ = ["TestFailed", "UnleashApi", "UnleashRefused", "UnleashUnavailable"]

SOURCE = "Unleash"


class UnleashUnavailable(SourceUnavailable):
    """Unleash did not answer in time, refused the connection, or failed (5xx)."""

    def __init__(self, detail: str) -> None:
        super().__init__(SOURCE, detail)


class UnleashRefused(RolloutError, RuntimeError):
    """Unleash answered 4xx: a bad token (401), a token without the right (403), an
    unknown feature or environment (404), a request it would not take (400, 409)."""

    def __init__(self, status: int, method: str, path: str, message: str) -> None:
        super().__init__(f"Unleash refused {method} {path} ({status}): {message}")
        self.status = status
        self.message = message


class TestFailed(RolloutError, RuntimeError):
    """A JSON Patch `test` op did not match: the value changed since it was read, and
    Unleash wrote nothing (it answers HTTP 500 "Test operation failed")."""

    __test__ = False  # not a pytest test class


class UnleashApi:
    """Calls against `url` (the server's root, without `/api`) with `token`."""

    def __init__(self, url: str, token: SecretStr | str, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self._token = token if isinstance(token, SecretStr) else SecretStr(token)
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"UnleashApi({self.url!r})"

    def get(self, path: str, query: Mapping[str, str | int] | None = None) -> Any:
        if query:
            path = f"{path}?{urllib.parse.urlencode(query)}"
        return self.call("GET", path)

    def post(self, path: str, body: object = None) -> Any:
        return self.call("POST", path, body)

    def patch(self, path: str, operations: list[dict[str, Any]]) -> Any:
        """A JSON Patch; TestFailed when one of its `test` ops does not match."""
        return self.call("PATCH", path, operations)

    def call(self, method: str, path: str, body: object = None) -> Any:
        """`method path`; the decoded JSON answer, None for an empty one."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - the URL is validated in settings
            self.url + path,
            data=data,
            method=method,
            headers={
                "Authorization": self._token.get_secret_value(),
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        shown = path.split("?", 1)[0]
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310
                raw = answer.read()
        except urllib.error.HTTPError as error:
            message = _message_of(error)
            if error.code == 500 and "test operation failed" in message.lower():
                raise TestFailed(message.splitlines()[0]) from None
            if error.code >= 500 or error.code == 429:
                raise UnleashUnavailable(
                    f"{method} {shown} answered {error.code}: {message}"
                ) from None
            raise UnleashRefused(error.code, method, shown, message) from None
        except TimeoutError:
            raise UnleashUnavailable(
                f"{method} {shown} did not answer within {self.timeout:g} s"
            ) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise UnleashUnavailable(f"{method} {shown} failed: {reason}") from None
        try:
            return json.loads(raw) if raw.strip() else None
        except ValueError:
            raise UnleashUnavailable(f"{method} {shown} answered something not JSON") from None


def _message_of(error: urllib.error.HTTPError) -> str:
    """Unleash's own words from an error body (`message`, or its `details`), trimmed."""
    try:
        body = json.loads(error.read() or b"{}")
    except (ValueError, OSError):
        return str(error.reason)[:300]
    if not isinstance(body, dict):
        return str(error.reason)[:300]
    details = body.get("details")
    if isinstance(details, list) and details and isinstance(details[0], dict):
        text = str(details[0].get("message") or details[0].get("description") or "")
    else:
        text = ""
    return (text or str(body.get("message") or error.reason))[:300]
