"""ui.warm: the modules a script imports at top level (what the warm start imports before serving)."""

from ui.warm import script_imports


def test_script_imports_lists_top_level_absolute_imports(tmp_path):
    script = tmp_path / "page.py"
    script.write_text(
        "import json\n"
        "import streamlit as st\n"
        "from segloss_core.analyses import playground as pg\n"
        "from segloss_core.plots.masks import case_figure\n"
        "from . import sibling\n"
        "def f():\n"
        "    import scipy\n"
    )
    names = script_imports([script])
    assert names[:2] == ["json", "streamlit"]
    assert "segloss_core.analyses.playground" in names and "segloss_core.plots.masks" in names
    assert "scipy" not in names, "imports inside functions stay lazy"
    assert not any(n.startswith(".") or n == "sibling" for n in names), "relative imports are skipped"


def test_script_imports_skips_unreadable_scripts(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def (:\n")
    assert script_imports([bad, tmp_path / "missing.py"]) == []


def test_app_pages_are_the_navigation_scripts():
    from ui.warm import ROOT, app_pages

    pages = app_pages()
    assert pages and pages[0] == "pages/playground.py", "the default page is warmed first"
    assert all((ROOT / p).is_file() for p in pages)


def test_warm_order_puts_the_first_visit_and_costly_pages_first():
    from ui.warm import WARM_FIRST, app_pages, warm_order

    pages = app_pages()
    ordered = warm_order(pages)
    assert sorted(ordered) == sorted(pages)
    assert ordered[0] == "pages/playground.py" and ordered[: len(WARM_FIRST)] == list(WARM_FIRST)
