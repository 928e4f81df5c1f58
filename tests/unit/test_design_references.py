"""Every "docs/design.md §N" a source file or doc cites names a section docs/design.md has."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DESIGN = ROOT / "docs" / "design.md"
CITING = ("app", "queries", "pages", "tests", "docs", "deploy")
REFERENCE = re.compile(r"docs/design\.md §(\d+)")


def _sections() -> set[str]:
    return set(re.findall(r"^## (\d+)\. ", DESIGN.read_text(), flags=re.MULTILINE))


def _citing_files() -> list[Path]:
    files = [ROOT / "README.md"]
    for folder in CITING:
        files += [
            path
            for path in (ROOT / folder).rglob("*")
            if path.suffix in {".py", ".md", ".yml", ".yaml"} and path.is_file()
        ]
    return files


def test_design_has_its_nine_sections_in_order():
    numbers = re.findall(r"^## (\d+)\. ", DESIGN.read_text(), flags=re.MULTILINE)
    assert numbers == [str(n) for n in range(1, 10)]


def test_every_design_reference_names_an_existing_section():
    sections = _sections()
    cited: list[tuple[str, str]] = []
    for path in _citing_files():
        for number in REFERENCE.findall(path.read_text(encoding="utf-8")):
            cited.append((str(path.relative_to(ROOT)), number))
    dangling = [(path, number) for path, number in cited if number not in sections]
    assert cited, "no file cites docs/design.md §N: the pattern no longer matches"
    assert dangling == []
