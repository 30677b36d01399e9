"""``astro-clustermass plugins``: list estimators and plugins."""

from __future__ import annotations

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    """Arguments of ``astro-clustermass plugins``."""
    parser.add_argument("--strict", action="store_true", help="fail on the first broken plugin")


def run(args):
    """Run ``astro-clustermass plugins``; returns the exit status."""
    from ..registry import Registry

    registry = Registry(strict=True if args.strict else None)
    registry.table().pprint_all()
    broken = [p for p in registry.plugins if p.status == "error"]
    return 1 if broken and args.strict else 0
