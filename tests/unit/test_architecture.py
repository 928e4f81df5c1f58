"""The shape of the code, read from the source: no import cycle between modules or
between packages, nothing below the pages imports the UI or a page service, and the
light modules stay light (what the rollback path and the autopilot import)."""

import subprocess
import sys

import pytest

from tests.support.imports import ROOT, cycles, graph, package_graph, upward_imports


def test_no_module_imports_itself_through_others():
    assert cycles(graph()) == []


def test_no_package_imports_itself_through_others():
    assert cycles(package_graph(graph())) == []


def test_nothing_below_the_pages_imports_the_ui_or_a_page_service():
    assert upward_imports(graph()) == []


@pytest.mark.parametrize("module", ["app.text", "app.notify", "app.ui", "app.rollout"])
def test_light_modules_load_no_pandas_and_no_streamlit(module: str):
    probe = f"import sys, {module}; print(sorted({{'pandas', 'streamlit'}} & set(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"
