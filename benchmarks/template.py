"""The words of docs/performance.md: named blocks of Markdown with ``string.Template`` placeholders.

A template file is a header comment, then blocks, each opened by a line ``<!-- block: NAME -->``.
``Page.fill(name, **values)`` substitutes a block's ``$name`` / ``${name}`` placeholders; a
placeholder without a value raises ``KeyError`` naming the block and the placeholder, so a page is
never written with a hole in it. Values given to the page once (``common``) reach every block.

>>> page = Page.parse("<!-- note -->\\n<!-- block: hello -->\\nHello, $who.\\n\\n\\n\\n$rest\\n", common={"who": "world"})
>>> page.fill("hello", rest="")
'Hello, world.'
>>> page.fill("hello")
Traceback (most recent call last):
...
KeyError: "template block 'hello' has no value for $rest"
"""

from __future__ import annotations

import re
from pathlib import Path
from string import Template

_BLOCK = re.compile(r"^<!-- block: ([a-z0-9-]+) -->$", re.MULTILINE)


class Page:
    """The blocks of one template, by name, and the values every block may use."""

    def __init__(self, blocks: dict[str, str], common: dict[str, str] | None = None):
        self.blocks = blocks
        self.common = dict(common or {})

    @classmethod
    def parse(cls, text: str, common: dict[str, str] | None = None) -> Page:
        parts = _BLOCK.split(text)  # [header, name, body, name, body, ...]
        names = parts[1::2]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"template blocks defined twice: {', '.join(duplicated)}")
        return cls(dict(zip(names, parts[2::2])), common)

    @classmethod
    def load(cls, path: Path, common: dict[str, str] | None = None) -> Page:
        return cls.parse(Path(path).read_text(), common)

    def fill(self, name: str, **values) -> str:
        """Block ``name`` with its placeholders filled, trailing spaces and extra blank lines removed."""
        try:
            text = Template(self.blocks[name]).substitute({**self.common, **values})
        except KeyError as err:
            missing = err.args[0]
            raise KeyError(
                f"template block {name!r} has no value for ${missing}"
                if name in self.blocks
                else f"no template block {missing!r}"
            ) from None
        return tidy(text)

    def inline(self, name: str, **values) -> str:
        """Block ``name`` filled, on one line: a phrase to fill into a sentence or a list item."""
        return " ".join(self.fill(name, **values).split("\n"))

    def identifiers(self) -> set[str]:
        """Every placeholder name the blocks use."""
        return {ident for body in self.blocks.values() for ident in Template(body).get_identifiers()}


def tidy(text: str) -> str:
    """Markdown without trailing spaces, runs of blank lines (left by empty optional parts) or edge blanks."""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
