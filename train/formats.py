"""The figure formats a command writes (``--format``): parsed here, without Matplotlib, so a command's start does not
load the plotting library it needs only once a run is over."""

from __future__ import annotations

from mrnet.core.errors import UserError

FORMATS = ("png", "pdf", "svg")
FORMAT_HELP = "Figure formats, comma-separated: png (always written), pdf, svg; e.g. --format png,pdf,svg."


def parse_formats(text: str | None) -> tuple[str, ...]:
    """``"png,pdf"`` -> ``("png", "pdf")``; PNG is always written (the reports link it).

    >>> parse_formats("svg,pdf")
    ('png', 'svg', 'pdf')
    """
    asked = [f.strip().lower().lstrip(".") for f in (text or "png").split(",") if f.strip()]
    wrong = [f for f in asked if f not in FORMATS]
    if wrong:
        raise UserError(f"--format {text}: {', '.join(wrong)} is not a figure format; choose from {','.join(FORMATS)}")
    return tuple(dict.fromkeys(["png", *asked]))
