"""The ``astro-clustermass`` command.

Subcommands are defined in their own modules, imported only when used, each with
``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ._version import __version__

__all__ = ["main"]

log = logging.getLogger("astro_clustermass")

#: name -> (module, one-line help); module None: defined here. Modules must not
#: import torch at import time.
_SUBCOMMANDS = {
    "estimate": (None, "add mass columns to a catalogue file"),
    "plugins": (None, "list estimators and plugins"),
    "demo": ("astro_clustermass.demo", "run every installed estimator on a built-in catalogue"),
    "train": ("astro_clustermass.cnn.cli", "train a CNN ensemble on a simulated data set"),
    "evaluate": ("astro_clustermass.evaluation.cli",
                 "compare estimators against true masses: metrics table and report"),
    "ebi": ("astro_clustermass.ebi",
            "build energy-band images of catalogue clusters from event files (HDF5)"),
    "photometry": ("astro_clustermass.photometry",
                   "measure aperture count rates and L_X from images or event files"),
    "simulate": ("astro_clustermass.simulate.cli",
                 "simulate a mock eFEDS-like sky: events, truth and detections"),
    "run": ("astro_clustermass.parallel_cli",
            "catalogue-scale estimation by sky tile on Dask (resumable)"),
}


# -- estimate ------------------------------------------------------------------------
def _parse_column_map(items):
    mapping = {}
    for item in items or ():
        canonical, sep, column = item.partition("=")
        if not sep or not canonical or not column:
            raise SystemExit(f"--column-map expects CANONICAL=COLUMN, got {item!r}")
        mapping[canonical] = column
    return mapping


def _add_estimate_arguments(parser):
    parser.add_argument("catalog", help="input catalogue (FITS, ECSV, HDF5; eSASS layouts)")
    parser.add_argument("-o", "--output", required=True, help="output file (format from suffix)")
    parser.add_argument("-e", "--estimator", action="append", dest="estimators",
                        help="estimator name (repeatable); default: all that can run")
    parser.add_argument("--column-map", action="append", metavar="CANONICAL=COLUMN",
                        help="use COLUMN for a canonical column, e.g. z=Z_BEST (repeatable)")
    parser.add_argument("--events", nargs="+", metavar="FILE",
                        help="event files (FITS EVENTS) for estimators that read photons, "
                             "e.g. cnn-ensemble's energy-band images")
    parser.add_argument("--images", metavar="STACK",
                        help="energy-band images of the catalogue's rows, in its order (HDF5 "
                             "stack from `astro-clustermass ebi`), for estimators that read "
                             "them (cnn-ensemble)")
    parser.add_argument("--rate-band", type=int, action="append",
                        help="eSASS band suffix whose ML_RATE is the count rate (repeatable: summed)")
    parser.add_argument("--on-error", choices=("mask", "raise"), default="mask",
                        help="when an estimator fails: mask its columns (default) or stop")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")


def _run_estimate(args):
    from .api import add_mass_columns
    from .esass import read_catalog, write_table

    table = read_catalog(args.catalog, rate_band=args.rate_band)
    estimators = args.estimators
    if args.images:
        estimators = _with_images(table, estimators, args)
    out = add_mass_columns(table, estimators=estimators,
                           column_map=_parse_column_map(args.column_map), on_error=args.on_error,
                           events=args.events)
    write_table(out, args.output, overwrite=args.overwrite)
    added = [c for c in out.colnames if c not in table.colnames]
    print(f"wrote {len(out)} rows with {len(added)} new columns to {args.output}")
    return 0


def _with_images(table, names, args):
    """The requested estimators, those that read EBIs built with ``images=args.images``."""
    from .api import _resolve
    from .registry import default_registry

    registry = default_registry()
    if names is None:  # every estimator that can run, plus those that read images
        auto = [e.name for e in _resolve(None, table, _parse_column_map(args.column_map))]
        names = auto + [n for n in registry.names
                        if n not in auto and registry.spec(n).accepts("images")]
    takers = [n for n in names if registry.spec(n).accepts("images")]
    if not takers:
        raise SystemExit(f"--images: none of the estimators {names} reads energy-band images")
    return [registry.get(n, images=args.images) if n in takers else n for n in names]


# -- plugins -------------------------------------------------------------------------
def _add_plugins_arguments(parser):
    parser.add_argument("--strict", action="store_true", help="fail on the first broken plugin")


def _run_plugins(args):
    from .registry import Registry

    registry = Registry(strict=True if args.strict else None)
    registry.table().pprint_all()
    broken = [p for p in registry.plugins if p.status == "error"]
    return 1 if broken and args.strict else 0


def add_arguments(parser, name):
    """Arguments of the subcommands defined in this module."""
    {"estimate": _add_estimate_arguments, "plugins": _add_plugins_arguments}[name](parser)


def _build_parser():
    parser = argparse.ArgumentParser(
        prog="astro-clustermass",
        description="Galaxy-cluster masses (M500c) with uncertainties from X-ray survey data.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log INFO messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in _SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if module is None:
            add_arguments(p, name)
            continue
        try:
            importlib.import_module(module).add_arguments(p)
        except Exception as exc:  # a broken subcommand must not break the others
            p.set_defaults(_broken=f"{type(exc).__name__}: {exc}")
    return parser


def main(argv=None):
    """Entry point of ``astro-clustermass``; returns the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return 2
    module = _SUBCOMMANDS[args.command][0]
    if getattr(args, "_broken", None):
        print(f"astro-clustermass {args.command}: unavailable: {args._broken}", file=sys.stderr)
        return 1
    try:
        if module is None:
            return {"estimate": _run_estimate, "plugins": _run_plugins}[args.command](args)
        return importlib.import_module(module).run(args)
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        print(f"astro-clustermass {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
