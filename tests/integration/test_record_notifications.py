"""Under an action's audit record, the notifications it sent and what became of each
(issue 24: on-call could not see whether anyone was told). Real parts: the bundled flags,
SQLite, two HTTP receivers on 127.0.0.1, one answering 200 and one 500."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from app.notify import WebhookNotifier
from app.rollout.action_model import Action, ActionRequest
from app.rollout.roles import Identity, Role
from app.runtime import open_runtime
from app.settings import load_settings
from tests.support.bundled import copy_bundled_config
from tests.support.webhook_receiver import Receiver

ENTRY_POINT = Path(__file__).resolve().parents[2] / "app" / "main.py"
CAROL = Identity("carol", Role.OPERATOR, "test")


def test_the_audit_record_lists_each_webhook_and_its_delivery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_rollout_environment
) -> None:
    good, bad = Receiver(), Receiver(answers=[500] * 20)
    try:
        copy_bundled_config(tmp_path)
        env = {
            "ROLLOUT_STATE_DIR": str(tmp_path),
            "ROLLOUT_WEBHOOKS": "oncall=json,audit=json",
            "ROLLOUT_WEBHOOK_URL_ONCALL": good.url,
            "ROLLOUT_WEBHOOK_URL_AUDIT": bad.url,
            "ROLLOUT_NOTIFY_MANUAL_ACTIONS": "true",
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        runtime = open_runtime(load_settings())
        result = runtime.execute(
            ActionRequest(Action.ROLLBACK, "production", "errors spiking", CAROL, flag="ab_testing")
        )
        assert result.applied, result.error
        notifier = runtime.notifier
        assert isinstance(notifier, WebhookNotifier)
        notifier.flush(60)  # the failing one gives up after its retries
        notifier.close()
        (record,) = result.audit

        st.cache_resource.clear()
        app = AppTest.from_file(str(ENTRY_POINT), default_timeout=60)
        app.query_params["id"] = str(record.id)
        at = app.switch_page("../pages/audit.py").run()
        assert not at.exception, at.exception
        said = [str(m.value) for m in at.markdown if "Notifications sent" in str(m.value)]
        assert len(said) == 1
        lines = said[0].replace("\\", "").splitlines()
        assert lines[0] == "**Notifications sent**"
        assert lines[1] == "- oncall: delivered (1 attempt)"
        assert lines[2].startswith("- audit: failed after ") and lines[2].endswith(" — HTTP 500")
        assert good.url not in said[0] and bad.url not in said[0]  # a URL is a secret
    finally:
        st.cache_resource.clear()
        good.stop()
        bad.stop()
