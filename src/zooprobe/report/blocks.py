"""The pieces the report's template lays out: sections with an anchor, tables that sort, figures.

Section bodies are HTML fragments built by the section modules, which escape every value they
interpolate (names of models and benchmarks come from user params); the template escapes
everything else it prints.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import pandas as pd
from markupsafe import Markup


@dataclass(frozen=True)
class Section:
    """One section of the report.

    Attributes:
        title: its heading, plain text (escaped by the template).
        body: its HTML below the heading.
        anchor: the id the table of contents links to; derived from the title when empty.
    """

    title: str
    body: Markup
    anchor: str = ""

    @property
    def id(self) -> str:
        """The section's anchor, a slug of the title unless one was given."""
        return self.anchor or slug(self.title)

    @property
    def html(self) -> Markup:
        """The heading and body as one fragment (for tests and for pages that are not the template)."""
        return Markup("<h2>{}</h2>\n").format(self.title) + self.body

    def __contains__(self, text: str) -> bool:
        return text in self.html


def bounds_text(low: float, high: float, digits: int = 3) -> str:
    """An interval's two ends as ``[low, high]``, the one spelling the report's text and tables share."""
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def figure_html(uri: str, caption: str) -> str:
    """An embedded figure with its caption, the caption escaped as its alt text too."""
    return (f"<figure><img alt='{Markup.escape(caption)}' src='{uri}'><figcaption>{Markup.escape(caption)}"
            f"</figcaption></figure>")


def id_first(benchmarks: Sequence[str], id_benchmarks: Sequence[str]) -> list[str]:
    """``benchmarks`` with the in-distribution ones first (in ``id_benchmarks`` order), then the rest as given."""
    return [b for b in id_benchmarks if b in benchmarks] + [b for b in benchmarks if b not in id_benchmarks]


def slug(text: str) -> str:
    """An HTML id from a heading: lower case, runs of anything but letters and digits become one hyphen."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def table_html(frame: pd.DataFrame, *, index: bool = True, float_format: str | None = None) -> Markup:
    """A table that sorts when a reader clicks its header: one header row, the index as its first column.

    Args:
        frame: the table; its index (with its name, if any) becomes the first column.
        index: keep the index as a column (else drop it).
        float_format: printf-style format of floats, e.g. ``"%.3g"``.

    Returns:
        ``<table class="sortable">`` HTML in a sideways-scrolling ``div``, every cell escaped by pandas.
    """
    frame = frame.copy()
    # One header row: tuple column labels are joined, and the columns' own name is dropped.
    frame.columns = [" / ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in frame.columns]
    if index:
        frame = frame.reset_index(names=[str(n) if n is not None else "" for n in frame.index.names])
    formatter = (lambda x: float_format % x) if float_format else None
    # The wrapper scrolls a wide table sideways instead of widening the page.
    return Markup("<div class='table-scroll'>{}</div>").format(Markup(frame.to_html(
        index=False, escape=True, na_rep="", border=0, classes="sortable", float_format=formatter)))
