"""``astro-clustermass plugins``: list estimators and plugins."""

from __future__ import annotations

import shutil

__all__ = ["add_arguments", "run", "format_table"]

#: Width of the listing when the terminal's is not known [characters].
DEFAULT_WIDTH = 100

#: Narrowest description column before the table gives up fitting the width.
_MIN_DESCRIPTION = 12

#: Longest status shown in the short listing (errors can be long: ``--long``).
_MAX_STATUS = 40


def add_arguments(parser):
    """Arguments of ``astro-clustermass plugins``."""
    parser.add_argument("--strict", action="store_true", help="fail on the first broken plugin")
    parser.add_argument("--long", action="store_true",
                        help="the whole table: descriptions and errors not shortened")


def _cut(text, width):
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[:max(width - 3, 0)] + "..."


def format_table(table, width=DEFAULT_WIDTH):
    """The listing of `~astro_clustermass.list_estimators` as lines at most ``width``
    characters long (statuses and descriptions shortened with ``...``).

    Parameters
    ----------
    table : `~astropy.table.Table`
        Columns name, package, version, inputs, status, description.
    width : int
        Characters per line.

    Returns
    -------
    list of str
    """
    names = ("name", "package", "version", "inputs", "status")
    rows = [[str(row[n]) for n in names] + [str(row["description"])] for row in table]
    for row in rows:
        row[4] = _cut(row[4], _MAX_STATUS)
    widths = [max([len(n)] + [len(r[i]) for r in rows]) for i, n in enumerate(names)]
    room = max(width - sum(widths) - 2 * len(widths), _MIN_DESCRIPTION)
    lines = ["  ".join(n.ljust(w) for n, w in zip(names + ("description",), widths + [0]))]
    lines.append("  ".join("-" * w for w in widths + [min(room, max(
        [len("description")] + [len(r[5]) for r in rows]))]))
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row[:5], widths)] + [_cut(row[5], room)]
        lines.append("  ".join(cells).rstrip())
    return [line.rstrip() for line in lines]


def run(args):
    """Run ``astro-clustermass plugins``; returns the exit status."""
    from ..registry import Registry

    registry = Registry(strict=True if args.strict else None)
    table = registry.table()
    if args.long:
        table.pprint_all()
    else:
        # the terminal's width, at most DEFAULT_WIDTH (which is also used for a pipe)
        width = min(shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns, DEFAULT_WIDTH)
        print("\n".join(format_table(table, width)))
    broken = [p for p in registry.plugins if p.status == "error"]
    return 1 if broken and args.strict else 0
