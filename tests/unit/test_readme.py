from pathlib import Path

from app.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_readme_documents_every_setting():
    missing = [n for n in Settings.model_fields if f"`ROLLOUT_{n.upper()}`" not in README]
    assert missing == []


def test_readme_names_the_two_commands_ci_runs():
    ci = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text()
    assert "make demo" in README and "make test" in README
    assert "make test" in ci
