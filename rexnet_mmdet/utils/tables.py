"""Result tables as GitHub markdown or aligned plain text, and counts in K/M/G."""
from typing import Sequence


def format_count(n: float) -> str:
    """``4796873 -> '4.80M'``, ``1.01e9 -> '1.01G'``."""
    for div, suffix in ((1e9, 'G'), (1e6, 'M'), (1e3, 'K')):
        if abs(n) >= div:
            return f'{n / div:.2f}{suffix}'
    return f'{n:.0f}'


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table."""
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '|'.join('---' for _ in header) + '|']
    lines += ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]
    return '\n'.join(lines)


def text_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain aligned text table."""
    cells = [list(map(str, header))] + [list(map(str, r)) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    out = ['  '.join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    out.insert(1, '  '.join('-' * w for w in widths))
    return '\n'.join(out)


def table(header: Sequence[str], rows: Sequence[Sequence[object]], markdown: bool = False) -> str:
    """:func:`markdown_table` or :func:`text_table`."""
    return markdown_table(header, rows) if markdown else text_table(header, rows)


__all__ = ['format_count', 'markdown_table', 'text_table', 'table']
