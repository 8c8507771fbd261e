"""The repository cites only itself and public references: no file points to notes outside it and
no file names a tracker issue number (derivations live in docs/theory.md)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUFFIXES = {".py", ".md", ".toml", ".txt", ".cfg", ".yaml", ".yml", ".ini"}
# built from pieces so this file does not match itself
OUTSIDE = re.compile("|".join(["paper" + "-theory", "loss" + "-conventions", "shared" + "/notes", "shared" + "/papers",
                               r"\.\./" + "shared", "/work" + "/"]), re.IGNORECASE)
ISSUE = re.compile(r"\bissues?\s*#?\s*\d+", re.IGNORECASE)


def _files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.split()
    return [ROOT / f for f in out if (Path(f).suffix in SUFFIXES or Path(f).name == "Makefile")
            and (ROOT / f).is_file()]


def test_scan_sees_the_repository():
    names = {p.relative_to(ROOT).as_posix() for p in _files()}
    assert {"README.md", "docs/theory.md", "segloss_core/core/registry.py", "tests/test_selfcontained.py"} <= names


def test_no_pointer_outside_the_repository_and_no_issue_numbers():
    bad = []
    for path in _files():
        for no, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if OUTSIDE.search(line) or ISSUE.search(line):
                bad.append(f"{path.relative_to(ROOT)}:{no}: {line.strip()[:100]}")
    assert not bad, "outside references or issue numbers:\n" + "\n".join(bad)


def test_the_patterns_catch_what_they_should():
    issue = "issue"
    for text in (f"see {issue} 9", f"({issue} #12)", f"{issue}s 4", "paper" + "-theory.md G1", "shared" + "/notes/x.md"):
        assert OUTSIDE.search(text) or ISSUE.search(text), text
    for text in ("Project-MONAI/MONAI#371", "LIVIAETS/boundary-loss#45", "docs/theory.md, G1", "#1f77b4"):
        assert not (OUTSIDE.search(text) or ISSUE.search(text)), text


LABEL = re.compile(r"\b(E1|G1[0-2]|G[1-9]|A[1-8]|B10|B[1-9]|C[1-5]|W[1-3])\b")


def test_theory_labels_used_in_the_code_are_defined_in_docs_theory():
    theory = (ROOT / "docs" / "theory.md").read_text(encoding="utf-8")
    defined = set(re.findall(r"^#+ (\w+)\. ", theory, re.MULTILINE))
    defined |= set(re.findall(r"^- \*\*(\w+)\.\*\*", theory, re.MULTILINE))
    assert {"E1", "G1", "G12", "A1", "A8", "B1", "B10", "C1", "C5", "W1", "W3"} <= defined
    used = {}
    for path in _files():
        if path.suffix != ".py":
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if "docs/theory.md" not in text and "theory B" not in text:
            continue
        for label in LABEL.findall(text):
            used.setdefault(label, path.relative_to(ROOT).as_posix())
    assert used, "no file cites docs/theory.md"
    missing = {k: v for k, v in used.items() if k not in defined}
    assert not missing, f"labels used but not defined in docs/theory.md: {missing}"
