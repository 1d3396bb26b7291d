"""The README and docs/ as a reader follows them: the test command is the one CI runs, every
relative link leads to a file of the repository, every page in docs/ is reachable from the
README's "Where to go next", and nothing points at a path on the authors' machines."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "bench").glob("*.md"))]
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_the_readme_test_command_is_what_ci_runs():
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    command = ci[-1]
    commands = re.findall(r"```sh\n(.*?)\n```", (ROOT / "README.md").read_text(), re.S)
    assert commands[:2] == [
        "python3 -m venv .venv && .venv/bin/pip install -e '.[dev]' && .venv/bin/signal-monitor dev",
        command,
    ], commands[:2]
    assert command in (ROOT / "docs" / "testing.md").read_text()


def test_every_patch_has_a_row_in_the_patches_table():
    from workflows.common import patches

    names = [v for k, v in vars(patches).items() if k.endswith("_PATCH") and isinstance(v, str)]
    table = (ROOT / "docs" / "testing.md").read_text()
    missing = [name for name in names if f"| `{name}` (" not in table]
    assert names and not missing, f"docs/testing.md's patches table lacks {missing}"


def _relative_links(page: Path) -> list[str]:
    return [t for t in _LINK.findall(page.read_text()) if not re.match(r"[a-z]+:", t) and not t.startswith("#")]


def test_every_relative_link_leads_to_a_file():
    broken = [
        f"{page.relative_to(ROOT)}: {target}"
        for page in PAGES
        for target in _relative_links(page)
        if not (page.parent / target.split("#", 1)[0]).resolve().exists()
    ]
    assert not broken, broken


def test_every_docs_page_is_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    linked = {(ROOT / t.split("#", 1)[0]).resolve() for t in _relative_links(ROOT / "README.md")}
    pages = sorted((ROOT / "docs").rglob("*.md"))
    assert pages, "docs/ has no pages"
    missing = [str(p.relative_to(ROOT)) for p in pages if p.resolve() not in linked]
    assert not missing, f"add these to the README's 'Where to go next': {missing}"
    assert "## Where to go next" in readme


def test_no_page_points_at_the_authors_machines():
    pattern = re.compile(r"/work/|\.\./shared|shared/[\w-]+\.md")
    found = [f"{page.relative_to(ROOT)}: {m.group(0)}" for page in PAGES for m in pattern.finditer(page.read_text())]
    assert not found, found
