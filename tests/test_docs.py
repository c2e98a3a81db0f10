"""The README and the docs/ pages: a short README, links that resolve (files and headings), and
no prose repeated between pages (each topic lives on one page)."""

import glob
import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = [os.path.join(REPO, "README.md")] + sorted(glob.glob(os.path.join(REPO, "docs", "*.md")))
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _prose(path):
    """Paragraphs outside fenced code blocks and tables, whitespace-normalised."""
    text = re.sub(r"```.*?```", "", open(path).read(), flags=re.S)
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text)]
    return [p for p in paragraphs if p and not p.startswith(("|", "#", "[README]"))]


def _anchors(path):
    """GitHub's heading anchors of a markdown file."""
    text = re.sub(r"```.*?```", "", open(path).read(), flags=re.S)
    heads = re.findall(r"^#+ (.+)$", text, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in heads}


def test_readme_is_short_and_points_to_every_page():
    readme = open(PAGES[0]).read()
    assert len(readme.split("\n")) <= 150, len(readme.split("\n"))
    docs = [os.path.relpath(p, REPO) for p in PAGES[1:]]
    assert len(docs) >= 6, docs
    missing = [d for d in docs if f"]({d})" not in readme]
    assert not missing, f"README links none of {missing}"


def test_links_resolve():
    bad = []
    for page in PAGES:
        for target in LINK.findall(open(page).read()):
            if target.startswith(("http://", "https://")):
                continue
            path, _, anchor = target.partition("#")
            full = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
            if not os.path.exists(full):
                bad.append((os.path.relpath(page, REPO), target, "no such file"))
            elif anchor and anchor not in _anchors(full):
                bad.append((os.path.relpath(page, REPO), target, "no such heading"))
    assert not bad, bad


def test_no_page_repeats_another():
    seen, repeated = {}, []
    for page in PAGES:
        for p in _prose(page):
            if len(p) >= 80 and p in seen and seen[p] != page:
                repeated.append((os.path.relpath(seen[p], REPO), os.path.relpath(page, REPO), p))
            seen.setdefault(p, page)
    assert not repeated, repeated
