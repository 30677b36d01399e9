"""What several subcommands parse the same way."""

from __future__ import annotations

import argparse
import glob

__all__ = ["parse_column_map", "expand_paths", "add_column_map_argument", "positive",
           "all_failed"]


def positive(kind):
    """An argparse ``type``: a number of ``kind`` (int or float) greater than zero."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0, not {text}")
        return value
    parse.__name__ = f"positive {kind.__name__}"
    return parse


def all_failed(table, written=None):
    """`RuntimeError` naming every estimator and why, if every estimator of ``table``
    failed (its provenance records an error)."""
    provenance = table.meta.get("astro_clustermass", {})
    errors = {name: info.get("error") for name, info in provenance.items()
              if isinstance(info, dict)}
    if errors and all(errors.values()):
        where = (f"{written} written with every row masked" if written else
                 "nothing written")
        raise RuntimeError(f"every estimator failed ({where}): " + "; ".join(
            f"{name}: {error}" for name, error in errors.items()))


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
