"""Go's text/tabwriter as podman's tables use it: the one column layout of ``ps``, ``images`` and
every ``--format 'table …'`` (cli/render.py's own tables, cli/template.py's templates)."""

from __future__ import annotations


def tabwrite(text: str, minwidth: int = 12, padding: int = 2) -> str:
    """Go's text/tabwriter as podman sets it up (minwidth 12, padding 2, padded with spaces):
    cells end at tabs; a column block is a run of consecutive lines with a cell there, as wide as
    its widest cell + padding (at least minwidth); the last cell of a line is never padded."""
    lines = [line.split("\t") for line in text.split("\n")]
    widths: list[int] = []
    out: list[str] = []

    def write(lo: int, hi: int) -> None:
        out.extend("".join(c.ljust(widths[j]) if j < len(widths) else c for j, c in enumerate(cells))
                   for cells in lines[lo:hi])

    def block(lo: int, hi: int) -> None:  # tabwriter.Writer.format, recursive over the columns
        column, this = len(widths), lo
        while this < hi:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write(lo, this)
            lo, width = this, minwidth
            while this < hi and column < len(lines[this]) - 1:
                width, this = max(width, len(lines[this][column]) + padding), this + 1
            widths.append(width)
            block(lo, this)
            widths.pop()
            lo = this
        write(lo, hi)

    block(0, len(lines))
    return "\n".join(out)
