"""The overview on a real Unleash: a change made in Unleash by someone else shows as
such, and a flag the dashboard cannot map is marked read-only with its reason."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.runtime import open_runtime
from app.settings import load_settings
from app.ui.overview_table import last_change_text, overview_display_frame
from app.unleash.api import UnleashApi
from tests.support.unleash import SOMEONE_ELSE, UnleashSeed

pytestmark = pytest.mark.unleash


def test_a_change_made_in_unleash_shows_who_made_it_and_a_read_only_flag_says_why(
    unleash: UnleashSeed, tmp_path: Path, no_rollout_environment: None
) -> None:
    unleash.create("checkout", rollout=5)
    unleash.create(
        "beta_users",
        rollout=100,
        constraints=[{"contextName": "userId", "operator": "IN", "values": ["u1"]}],
    )
    server = unleash.server
    olga = UnleashApi(server.url, server.other_tokens[SOMEONE_ELSE])
    (strategy,) = unleash.strategies("checkout")
    olga.patch(
        f"{unleash.features_path('checkout')}/environments/production/strategies/{strategy['id']}",
        [{"op": "replace", "path": "/parameters/rollout", "value": "25"}],
    )
    settings = load_settings(
        state_dir=tmp_path,
        flag_backend="unleash",
        unleash_url=unleash.server.url,
        unleash_token=unleash.server.admin_token,
    )

    overview = open_runtime(settings).overview("production")

    rows = {row.flag: row for row in overview.rows}
    now = datetime.now(UTC)
    assert rows["checkout"].percentage == 25.0
    assert last_change_text(rows["checkout"], now).endswith(
        "ago · changed in Unleash by olga-script: rollout 5 % → 25 %"
    )
    assert rows["checkout"].read_only == ""
    assert "constraints" in rows["beta_users"].read_only
    frame = overview_display_frame(overview.rows, now, "production").set_index("Flag")
    beta = frame.loc["/flag_detail?env=production&flag=beta_users"]
    assert beta["State"] == "🔒 enabled"  # on at 100 %
    assert beta["Why"].startswith("read-only: ")
    assert unleash.server.admin_token not in frame.to_string()
