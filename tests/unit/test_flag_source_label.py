"""The sidebar says where the flags come from, never with a credential."""

from __future__ import annotations

from pathlib import Path

from app.settings import Settings
from app.ui.widgets import flag_source_label


def test_unleash_is_named_with_its_project_and_address_but_no_credential() -> None:
    settings = Settings(
        flag_backend="unleash",
        unleash_url="https://ops:hunter2@unleash.example.com/",
        unleash_token="*:*.super-secret",
        unleash_project="checkout",
    )

    label = flag_source_label(settings)

    assert label == "🏁 Flags: Unleash project `checkout` at `https://***@unleash.example.com`"
    assert "hunter2" not in label and "super-secret" not in label


def test_the_files_and_the_database_are_named_too(tmp_path: Path) -> None:
    files = Settings(flags_file=tmp_path / "flags.yaml")
    assert flag_source_label(files) == f"🏁 Flags: `{tmp_path / 'flags.yaml'}`"
    assert flag_source_label(Settings(flag_backend="sql")) == "🏁 Flags: the metrics database"
