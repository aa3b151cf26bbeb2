"""The docs name tests as evidence; each test they name must exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NAMED = re.compile(r"`((?:[a-z_]+/)*test_\w+\.py)((?:::\w+)?)`")


def references() -> list[tuple[str, str, str]]:
    found = []
    for doc in sorted((REPO / "docs").glob("*.md")) + [REPO / "README.md"]:
        for path, test in NAMED.findall(doc.read_text()):
            found.append((doc.name, path, test.removeprefix("::")))
    return found


@pytest.mark.parametrize("doc, path, test", references())
def test_a_test_the_docs_name_exists(doc, path, test):
    candidates = [REPO / "tests" / path, REPO / path]
    file = next((c for c in candidates if c.is_file()), None)
    assert file is not None, f"{doc} names {path}, which is not in tests/"
    if test:
        assert re.search(rf"^def {test}\(", file.read_text(), re.M), f"{doc} names {path}::{test}, which does not exist"
