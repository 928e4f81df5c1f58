"""Enter in a text box never submits a form: every form of the pages is made by
`button_only_form`, which turns Streamlit's Enter-to-submit off (Enter in a rejection
reason used to approve the request with the form's first button)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _form_calls(path: Path) -> list[tuple[int, dict[str, object]]]:
    """(line, {keyword: constant value or None}) of every `st.form(...)` call in `path`."""
    calls = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "form"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "st"
        ):
            keywords = {
                k.arg or "": k.value.value if isinstance(k.value, ast.Constant) else None
                for k in node.keywords
            }
            calls.append((node.lineno, keywords))
    return calls


def test_the_only_form_in_the_pages_is_the_button_only_one():
    sources = [*ROOT.joinpath("app").rglob("*.py"), *ROOT.joinpath("pages").glob("*.py")]
    found = {
        f"{path.relative_to(ROOT)}:{line}": keywords
        for path in sources
        for line, keywords in _form_calls(path)
    }
    assert list(found) == [next(k for k in found if k.startswith("app/ui/widgets.py"))]
    assert next(iter(found.values()))["enter_to_submit"] is False


def test_the_requests_page_and_the_plan_editor_use_it():
    for page in ("pages/requests.py", "app/ui/autopilot.py"):
        assert "button_only_form(" in ROOT.joinpath(page).read_text(), page
