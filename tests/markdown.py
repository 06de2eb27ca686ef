"""Reading the Markdown tables the bench scripts print."""

from __future__ import annotations


def table_rows(text: str) -> list[list[str]]:
    """Every ``| a | b |`` line of ``text`` as its stripped cells, header included."""
    return [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith("| ")
    ]
