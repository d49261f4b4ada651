"""Every relative link of the Markdown pages (README.md, BENCHMARKS.md, docs/) points at a file
that exists and, with a #fragment, at a heading of that page: a section moved from one page to
another must not leave a dead link behind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import REPO

PAGES = [REPO / "README.md", REPO / "BENCHMARKS.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def prose(page: Path) -> str:
    """The page without its code blocks, whose brackets are code, not links."""
    return FENCE.sub("", page.read_text())


def anchors(page: Path) -> set[str]:
    """The ids GitHub gives the page's headings: lower case, punctuation other than hyphens
    dropped, spaces made hyphens."""
    headings = re.findall(r"^#+ (.+)$", prose(page), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def relative_links(page: Path) -> list[str]:
    return [link for link in LINK.findall(prose(page)) if not re.match(r"[a-z]+:", link)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page):
    dead = []
    for link in relative_links(page):
        path, _, fragment = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists() or (fragment and target.suffix == ".md" and fragment not in anchors(target)):
            dead.append(link)
    assert dead == []


def test_the_check_sees_a_dead_link_and_a_dead_anchor(tmp_path):
    (tmp_path / "other.md").write_text("# A heading, with punctuation\n")
    page = tmp_path / "page.md"
    page.write_text("[a](other.md#a-heading-with-punctuation) [b](missing.md) [c](https://example.org)\n")
    assert relative_links(page) == ["other.md#a-heading-with-punctuation", "missing.md"]
    assert anchors(tmp_path / "other.md") == {"a-heading-with-punctuation"}
