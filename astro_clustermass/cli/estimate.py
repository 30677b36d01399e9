"""``astro-clustermass estimate``: add mass columns to a catalogue file.

Example::

    astro-clustermass estimate clusters.fits -o with_masses.fits --events events/*.fits
"""

from __future__ import annotations

from ._common import add_column_map_argument, all_failed, expand_paths, parse_column_map, positive

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    """Arguments of ``astro-clustermass estimate``."""
    parser.add_argument("catalog", help="input catalogue (FITS, ECSV, HDF5; eSASS layouts)")
    parser.add_argument("-o", "--output", required=True, help="output file (format from suffix)")
    parser.add_argument("-e", "--estimator", action="append", dest="estimators",
                        help="estimator name (repeatable); default: all that can run")
    add_column_map_argument(parser)
    parser.add_argument("--events", nargs="+", metavar="FILE",
                        help="event files (FITS EVENTS; globs allowed) for estimators that "
                             "read photons, e.g. cnn-ensemble's energy-band images")
    parser.add_argument("--images", metavar="STACK",
                        help="energy-band images of the catalogue's rows, in its order (HDF5 "
                             "stack from `astro-clustermass ebi`), for estimators that read "
                             "them (cnn-ensemble)")
    parser.add_argument("--rate-band", type=int, action="append",
                        help="eSASS band suffix whose ML_RATE is the count rate "
                             "(repeatable: summed)")
    parser.add_argument("--timeout", type=positive(float), default=None,
                        help="time limit per estimator, seconds (each then runs in its own "
                             "process; one that runs out of time is masked)")
    parser.add_argument("--on-error", choices=("mask", "raise"), default="mask",
                        help="when an estimator fails: mask its columns (default) or stop")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")


def run(args):
    """Run ``astro-clustermass estimate``; returns the exit status."""
    from ..api import add_mass_columns
    from ..esass import check_writable, read_catalog, write_table

    column_map = parse_column_map(args.column_map)
    check_writable(args.output, overwrite=args.overwrite)  # before any work, not after
    table = read_catalog(args.catalog, rate_band=args.rate_band)
    estimators = args.estimators
    if args.images:
        estimators = _with_images(table, estimators, args.images, column_map)
    events = expand_paths(args.events) if args.events else None
    out = add_mass_columns(table, estimators=estimators, column_map=column_map,
                           on_error=args.on_error, events=events, timeout=args.timeout)
    all_failed(out)
    write_table(out, args.output, overwrite=args.overwrite)
    added = [c for c in out.colnames if c not in table.colnames]
    print(f"wrote {len(out)} rows with {len(added)} new columns to {args.output}")
    return 0


def _with_images(table, names, images, column_map):
    """The requested estimators, those that read EBIs built with ``images=``."""
    from ..api import automatic_estimators
    from ..core import EstimatorError
    from ..registry import default_registry

    registry = default_registry()
    if names is None:  # every estimator that can run, plus those that read images
        try:
            auto = automatic_estimators(table, column_map)
        except EstimatorError:  # none without images: those that read them may
            auto = []
        names = auto + [n for n in registry.names
                        if n not in auto and registry.takes(n, "images")]
    # Named ones are the user's: their errors (unknown, duplicate) are raised.
    takers = [n for n in names if registry.spec(n).accepts("images")]
    if not takers:
        raise ValueError(f"--images: none of the estimators {names} reads energy-band images")
    return [registry.get(n, images=images) if n in takers else n for n in names]
