"""What several subcommands parse the same way."""

from __future__ import annotations

import glob

__all__ = ["parse_column_map", "expand_paths", "add_column_map_argument"]


def add_column_map_argument(parser):
    """``--column-map CANONICAL=COLUMN`` (repeatable)."""
    parser.add_argument("--column-map", action="append", metavar="CANONICAL=COLUMN",
                        help="use COLUMN for a canonical column, e.g. z=Z_BEST (repeatable)")


def parse_column_map(items):
    """``['z=Z_BEST', ...]`` -> ``{'z': 'Z_BEST', ...}``; ValueError on a malformed item."""
    mapping = {}
    for item in items or ():
        canonical, sep, column = item.partition("=")
        if not sep or not canonical or not column:
            raise ValueError(f"--column-map expects CANONICAL=COLUMN, got {item!r}")
        mapping[canonical] = column
    return mapping


def expand_paths(patterns):
    """File names, with shell-style patterns expanded (sorted); FileNotFoundError when a
    pattern matches nothing."""
    files = []
    for pattern in patterns or ():
        hits = sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else [pattern]
        if not hits:
            raise FileNotFoundError(f"no files match {pattern!r}")
        files.extend(hits)
    return files
