from pathlib import Path

from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
#: the settings reference moved from the README to docs/configuration.md (generated)
REFERENCE = (ROOT / "docs" / "configuration.md").read_text()


def test_the_docs_document_every_setting():
    missing = [n for n in Settings.model_fields if f"`ROLLOUT_{n.upper()}`" not in REFERENCE]
    assert missing == []
    assert "[docs/configuration.md](docs/configuration.md)" in README


def test_readme_names_the_two_commands_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make demo" in README and "make test" in README
    assert "make test" in ci


def test_readme_is_for_a_newcomer():
    assert len(README.splitlines()) <= 250
    assert "![" in README and "docs/screenshots/" in README
    pages = sorted((ROOT / "pages").glob("*.py"))
    assert len(pages) == 6
    for page in pages:  # one line per page
        assert README.count(f"| **{page.stem.replace('_', ' ').capitalize()}** |") == 1
