"""The README and the documentation site's pages: short README, links that resolve, every page in
the site's nav and linked from the README, and no words that only made sense while the code was
being written (issue numbers, commit hashes, test counts that go stale)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "_ext" not in p.parts)
MAX_README_LINES = 320

# [text](target) and ![alt](target); the target ends at the first space or closing parenthesis
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)
_STALE = [
    (re.compile(r"\bissue\s+#?\d+", re.I), "an issue number"),
    (re.compile(r"\bcommit\s+[0-9a-f]{7,40}\b", re.I), "a commit hash"),
    (re.compile(r"\bthis session\b|\bin a later session\b|\bprevious session\b", re.I), "a work session"),
    (re.compile(r"\bthis machine\b", re.I), "an unnamed machine"),
    (re.compile(r"\boutside probe\b", re.I), "a review probe"),
    (re.compile(r"\b\d[\d,]* tests\b", re.I), "a test count (it goes stale)"),
]


def links(text: str) -> list[str]:
    """Link targets in Markdown ``text``, outside code spans and blocks."""
    return _LINK.findall(_CODE.sub("", text))


def broken_links(path: Path) -> list[str]:
    """Relative links of ``path`` whose file does not exist (anchors and web links not followed)."""
    broken = []
    for target in links(path.read_text()):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # https:, mailto:, or an anchor in the same page
        file = target.split("#", 1)[0]
        if not (path.parent / file).exists():
            broken.append(target)
    return broken


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def stale_words(text: str) -> list[str]:
    return [f"{why}: {m.group(0)!r}" for pattern, why in _STALE for m in pattern.finditer(text)]


def nav_pages(mkdocs_yml: str) -> set[str]:
    return set(re.findall(r":\s*([\w./-]+\.md)\s*$", mkdocs_yml, re.M))


def test_readme_is_short():
    lines = len(README.read_text().splitlines())
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; at most {MAX_README_LINES}: move detail to docs/"


@pytest.mark.parametrize("path", [README, *PAGES], ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_at_files(path):
    assert not broken_links(path), f"{path.relative_to(ROOT)} links missing files: {broken_links(path)}"


def test_the_readme_table_of_contents_points_at_its_headings():
    text = README.read_text()
    anchors = {github_anchor(h) for h in re.findall(r"^#{1,6} (.+)$", _CODE.sub("", text), re.M)}
    targets = [t[1:] for t in links(text) if t.startswith("#")]
    assert targets, "README has no table of contents"
    assert set(targets) <= anchors, f"README links to missing headings: {sorted(set(targets) - anchors)}"


def test_the_readme_links_every_page_of_the_site():
    text = README.read_text()
    linked = {(ROOT / t.split("#", 1)[0]).resolve() for t in links(text) if t.startswith("docs/")}
    missing = [str(p.relative_to(ROOT)) for p in PAGES if p.parent == DOCS and p.resolve() not in linked]
    assert not missing, f"README does not link these docs pages: {missing}"


def test_every_page_is_in_the_site_nav():
    nav = nav_pages((ROOT / "mkdocs.yml").read_text())
    missing = [str(p.relative_to(DOCS)) for p in PAGES if str(p.relative_to(DOCS)) not in nav]
    assert not missing, f"docs pages in no nav entry of mkdocs.yml: {missing}"
    assert all((DOCS / page).exists() for page in nav), sorted(p for p in nav if not (DOCS / p).exists())


def test_every_figure_is_shown_on_a_page():
    shown = {(p.parent / t.split("#", 1)[0]).resolve() for p in [README, *PAGES] for t in links(p.read_text())}
    unused = [str(f.relative_to(ROOT)) for f in sorted((DOCS / "figures").iterdir()) if f.resolve() not in shown]
    assert not unused, f"figures no page shows (remove them or link them): {unused}"


@pytest.mark.parametrize("path", [README, *PAGES], ids=lambda p: str(p.relative_to(ROOT)))
def test_no_words_of_the_code_s_history(path):
    found = stale_words(path.read_text())
    assert not found, f"{path.relative_to(ROOT)}: " + "; ".join(found)


def test_the_checks_see_what_they_look_for(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("[ok](page.md) [gone](missing.md#x) [web](https://example.org) `[code](nope.md)` [a](#top)\n")
    assert broken_links(page) == ["missing.md#x"]
    assert github_anchor("Set-up from a clone: two commands") == "set-up-from-a-clone-two-commands"
    assert github_anchor("The `rewa` command") == "the-rewa-command"
    assert len(stale_words("as in issue 12, at commit 13efccd; 691 tests pass in this session")) == 4
    assert stale_words("the issue's first look; a test of the theorem") == []
    assert nav_pages("nav:\n  - Home: index.md\n  - API:\n      - Top: api/index.md\n") == {"index.md", "api/index.md"}
