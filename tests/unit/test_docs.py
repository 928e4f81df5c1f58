"""The docs say what the code does: the configuration reference is the settings model's,
every setting a page names exists, every relative link and anchor leads somewhere, and
the CLI synopsis names only commands and options the parser has."""

import argparse
import re
import unicodedata
from pathlib import Path

import pytest

from app.cli.commands import _parser
from app.settings import SECRET_FILE_SETTINGS, Settings
from app.settings_reference import REFERENCE, REGENERATE, main, reference

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]

#: Settings a page may name before the settings model has them, each with why. The test
#: fails once one exists, so that the exception is removed with the work that adds it.
NOT_YET_SETTINGS: dict[str, str] = {}

#: `ROLLOUT_NAME`, `ROLLOUT_WEBHOOK_URL_<NAME>_FILE`, `ROLLOUT_METRIC_*` (a family)
SETTING = re.compile(r"\bROLLOUT_(?:[A-Z0-9_]|<NAME>)+\*?")
#: compose's own variables, `${ROLLOUT_IMAGE:-…}`: not settings of the dashboard
COMPOSE_VARIABLE = re.compile(r"\$\{(ROLLOUT_[A-Z0-9_]+)")
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def _pages_text() -> list[tuple[Path, str]]:
    return [(page, page.read_text(encoding="utf-8")) for page in PAGES]


def test_the_configuration_reference_is_the_settings_models():
    assert REFERENCE == DOCS / "configuration.md"
    assert REFERENCE.read_text(encoding="utf-8") == reference(), (
        f"docs/configuration.md is stale: run `{REGENERATE}` and commit it"
    )


def test_the_check_command_says_whether_the_reference_is_current(
    capsys: pytest.CaptureFixture[str],
):
    assert main(["--check"]) == 0
    assert capsys.readouterr().err == ""


def test_the_configuration_reference_has_a_row_for_every_setting():
    text = REFERENCE.read_text(encoding="utf-8")
    missing = [n for n in Settings.model_fields if f"| `ROLLOUT_{n.upper()}` |" not in text]
    assert missing == []


def _is_a_setting(name: str, fields: set[str], compose: set[str]) -> bool:
    """`name` as a page writes it: a field, a secret's `_FILE`, one webhook's URL (or its
    file), a family `ROLLOUT_METRIC_*`, the form `ROLLOUT_<NAME>`, or a variable of
    deploy/compose.yaml."""
    if name in compose:
        return True
    if name.endswith("*"):
        prefix = name[len("ROLLOUT_") : -1].lower()
        return any(field.startswith(prefix) for field in fields)
    if name == "ROLLOUT_<NAME>":
        return True  # the form of every setting
    if re.fullmatch(r"ROLLOUT_WEBHOOK_URL_(?:<NAME>|[A-Z0-9])[A-Z0-9_]*", name):
        return True  # one webhook's URL, or `…_FILE` naming a file holding it
    field = name[len("ROLLOUT_") :].lower()
    if field in fields:
        return True
    return field.endswith("_file") and field.removesuffix("_file") in SECRET_FILE_SETTINGS


def test_every_setting_the_docs_name_exists():
    fields = set(Settings.model_fields)
    compose = set(COMPOSE_VARIABLE.findall((ROOT / "deploy" / "compose.yaml").read_text()))
    named: dict[str, set[str]] = {}
    for page, text in _pages_text():
        for name in SETTING.findall(text):
            named.setdefault(name, set()).add(str(page.relative_to(ROOT)))
    unknown = {
        name: sorted(pages)
        for name, pages in named.items()
        if not _is_a_setting(name, fields, compose) and name not in NOT_YET_SETTINGS
    }
    assert unknown == {}
    assert "ROLLOUT_DATABASE_URL_FILE" in named, "the pattern no longer finds `_FILE` forms"
    assert "ROLLOUT_IMAGE" in compose, "deploy/compose.yaml's variables are no longer found"


def test_a_setting_still_to_come_is_not_a_setting_yet():
    fields = set(Settings.model_fields)
    arrived = [n for n in NOT_YET_SETTINGS if n[len("ROLLOUT_") :].lower() in fields]
    assert arrived == [], "now a setting: remove it from NOT_YET_SETTINGS in this test"


def test_an_unknown_setting_is_caught():
    fields = set(Settings.model_fields)
    assert not _is_a_setting("ROLLOUT_REFRESH_SECOND", fields, set())
    assert not _is_a_setting("ROLLOUT_STATE_DIR_FILE", fields, set())  # not a secret
    assert _is_a_setting("ROLLOUT_PROMETHEUS_URL_FILE", fields, set())
    assert _is_a_setting("ROLLOUT_WEBHOOK_URL_<NAME>_FILE", fields, set())
    assert _is_a_setting("ROLLOUT_METRIC_*", fields, set())
    assert not _is_a_setting("ROLLOUT_METRICS_*", fields, set())


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces as `-`."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    kept = "".join(c for c in text if c in " -" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {_anchor(h) for h in re.findall(r"^#{1,6} (.+)$", text, flags=re.MULTILINE)}


def test_the_anchor_of_a_heading_is_githubs():
    assert _anchor("Autopilot: rollout plans") == "autopilot-rollout-plans"
    assert _anchor("History from Unleash (sync-unleash)") == "history-from-unleash-sync-unleash"
    assert _anchor("3. Metric contract") == "3-metric-contract"


def _links(text: str) -> list[str]:
    return LINK.findall(FENCE.sub("", text))


def test_every_relative_link_and_anchor_leads_somewhere():
    broken = []
    checked = 0
    for page, text in _pages_text():
        for target in _links(text):
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto:
            file_part, _, anchor = target.partition("#")
            destination = (page.parent / file_part).resolve() if file_part else page
            checked += 1
            if not destination.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
            elif anchor and destination.suffix == ".md" and anchor not in _anchors(destination):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert broken == []
    assert checked > 50, "the link pattern no longer finds the links"


def test_the_readme_is_short_and_links_every_docs_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    linked = {target.partition("#")[0] for target in _links(readme)}
    index = {target.partition("#")[0] for target in _links((DOCS / "README.md").read_text())}
    pages = {p.name for p in DOCS.glob("*.md")}
    assert {f"docs/{name}" for name in pages} - linked == set()
    assert pages - {"README.md"} - index == set()


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _synopsis() -> list[str]:
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    block = re.search(r"## Synopsis\n\n```\n(.*?)```", text, flags=re.DOTALL)
    assert block, "docs/cli.md has no synopsis block"
    lines: list[str] = []
    for line in block.group(1).splitlines():
        if line.startswith("rollout-dashboard"):
            lines.append(line)
        elif line.strip():
            lines[-1] += " " + line.strip()  # a continuation line
    return lines


def test_the_cli_synopsis_names_only_what_the_parser_has():
    root = _parser()
    problems = []
    documented = set()
    for line in _synopsis():
        words = line.split()[1:]
        parser, path = root, []
        while words and words[0] in _subcommands(parser):
            path.append(words[0])
            parser = _subcommands(parser)[words.pop(0)]
        parsers = {" ".join(path): parser}
        if words and "|" in words[0]:  # plan pause|resume|abort FLAG …
            verbs = words.pop(0).split("|")
            parsers = {" ".join([*path, verb]): _subcommands(parser).get(verb) for verb in verbs}
        for command, each in parsers.items():
            if each is None:
                problems.append(f"no command {command}")
                continue
            documented.add(command)
            for option in re.findall(r"(?<![\w-])--[a-z][a-z-]*", " ".join(words)):
                if option not in each._option_string_actions:
                    problems.append(f"{command or 'rollout-dashboard'}: no option {option}")
    assert problems == []
    commands = set()
    for name, parser in _subcommands(root).items():
        verbs = _subcommands(parser)
        commands |= {f"{name} {verb}" for verb in verbs} if verbs else {name}
    assert commands - documented == set(), "missing from docs/cli.md's synopsis"


@pytest.mark.parametrize("page", [p.name for p in PAGES[1:]])
def test_every_docs_page_starts_with_its_title(page: str):
    assert (DOCS / page).read_text(encoding="utf-8").startswith("# ")


def _preset_value(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def test_the_preset_table_is_what_the_presets_hold():
    from queries.names import OVERRIDABLE, PRESETS, MetricPreset

    text = (DOCS / "metrics.md").read_text(encoding="utf-8")
    header = re.search(r"^\| variable \| (.+) \|$", text, flags=re.MULTILINE)
    assert header, "docs/metrics.md has no preset table"
    presets = [MetricPreset(name.strip()) for name in header.group(1).split("|")]
    wrong, rows = [], 0
    for name in OVERRIDABLE:
        row = re.search(rf"^\| `ROLLOUT_METRIC_{name.upper()}` \| (.+) \|$", text, re.MULTILINE)
        assert row, f"no row for ROLLOUT_METRIC_{name.upper()}"
        rows += 1
        cells = [cell.strip() for cell in row.group(1).split("|")]
        for preset, cell in zip(presets, cells, strict=True):
            said = re.match(r"`([^`]*)`", cell)
            word = cell.split()[0].rstrip(":")  # `name`, "empty" or "same" (as the first)
            shown = said.group(1) if said else {"empty": "", "same": None}[word]
            if shown is None:  # "same": as the first column
                shown = _preset_value(getattr(PRESETS[presets[0]], name))
            actual = _preset_value(getattr(PRESETS[preset], name))
            if shown != actual:
                wrong.append(f"{name} {preset}: docs {shown!r}, preset {actual!r}")
    assert wrong == []
    assert rows == len(OVERRIDABLE)
