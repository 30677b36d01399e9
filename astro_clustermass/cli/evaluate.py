"""The ``astro-clustermass evaluate`` subcommand (no torch, matplotlib only when run).

::

    astro-clustermass evaluate CATALOG [--true-mass COL] [--estimators NAME ...]
        -o REPORT.html [--table metrics.ecsv] [--selection NAME=CONDITION ...]
        [--mass-bins 13,13.5,...] [--z-bins 0,0.2,...] [--no-figures] [--overwrite]
"""

from __future__ import annotations

import argparse
import os

__all__ = ["add_arguments", "run"]


def _edges(text):
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") \
            from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``astro-clustermass evaluate``."""
    parser.add_argument("catalog", help="catalogue with true masses and estimator columns "
                        "(log10M500c_NAME, log10M500c_NAME_err), any format astropy reads")
    parser.add_argument("-o", "--output", required=True,
                        help="report file: .html (self-contained) or .pdf")
    parser.add_argument("--true-mass", default="M500c",
                        help="column of the true M500c [Msun] (default M500c or an alias)")
    parser.add_argument("--estimators", nargs="+", metavar="NAME",
                        help="estimators to compare (default: every one with columns)")
    parser.add_argument("--table", metavar="FILE",
                        help="also write the metrics table (e.g. metrics.ecsv)")
    parser.add_argument("--selection", action="append", metavar="NAME=CONDITION",
                        help="selection to evaluate, e.g. 'hq=EXT_LIKE > 60 & DET_LIKE > 60' "
                             "(repeatable; default: all rows and the seeds' two cuts)")
    parser.add_argument("--mass-bins", type=_edges, metavar="EDGES",
                        help="bin edges in log10(M_true/Msun), comma-separated")
    parser.add_argument("--z-bins", type=_edges, metavar="EDGES",
                        help="redshift bin edges, comma-separated")
    parser.add_argument("--title", default="Comparison of mass estimators")
    parser.add_argument("--no-figures", action="store_true", help="tables only")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing output files")


def run(args: argparse.Namespace) -> int:
    """Evaluate, write the report (and table), print the summary."""
    from ..esass import read_catalog, write_table
    from ..evaluation.metrics import DEFAULT_MASS_BINS, DEFAULT_Z_BINS
    from ..evaluation.report import format_summary, write_report

    for out in (args.output, args.table):
        if out and os.path.exists(out) and not args.overwrite:
            raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    selections = None
    if args.selection:
        selections = {}
        for item in args.selection:
            name, sep, cond = item.partition("=")
            if not sep or not name.strip():
                raise ValueError(f"--selection expects NAME=CONDITION, got {item!r}")
            selections[name.strip()] = cond.strip()
    catalog = read_catalog(args.catalog)
    table = write_report(args.output, catalog, estimators=args.estimators,
                         true_mass=args.true_mass, selections=selections,
                         mass_bins=args.mass_bins or DEFAULT_MASS_BINS,
                         z_bins=args.z_bins or DEFAULT_Z_BINS, title=args.title,
                         figures=not args.no_figures)
    if args.table:
        out = table
        if args.table.lower().endswith((".fits", ".fit", ".fts", ".fits.gz")):
            import json

            # FITS headers cannot hold the nested meta dict: keep it as JSON text
            out = table.copy(copy_data=False)
            out.meta = {"ACM_EVAL": json.dumps(table.meta["astro_clustermass_evaluation"],
                                               default=str)}
        write_table(out, args.table, overwrite=True)
    print(format_summary(table))
    for note in table.meta["astro_clustermass_evaluation"]["notes"]:
        print(f"note: {note}")
    print(f"wrote {args.output}" + (f" and {args.table}" if args.table else ""))
    return 0
