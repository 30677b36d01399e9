"""``astro-clustermass run``: catalogue-scale estimation on Dask (see `parallel`).

Example::

    astro-clustermass run erass1.fits --events em01_*_EventList.fits -o masses.fits \\
        -e lx-chiu22 -e cr-erass1 -e cnn-ensemble --scheduler tcp://10.0.0.1:8786

Imports nothing heavy (no dask, no torch) until it runs.
"""

from __future__ import annotations

import argparse

from ._common import add_column_map_argument, all_failed, expand_paths, parse_column_map, positive

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``astro-clustermass run``."""
    parser.add_argument("catalog", help="cluster catalogue (FITS, ECSV, HDF5; eSASS layouts)")
    parser.add_argument("--events", nargs="+", default=[], metavar="FILE",
                        help="event files (FITS with an EVENTS extension; globs allowed)")
    parser.add_argument("-o", "--output", required=True,
                        help="output catalogue (format from the suffix; written atomically)")
    parser.add_argument("-e", "--estimator", action="append", dest="estimators",
                        help="estimator name (repeatable); default: all that can run")
    parser.add_argument("--scheduler", default=None,
                        help="threads (default), processes, synchronous, local-cluster, or a "
                             "Dask scheduler address such as tcp://host:8786")
    parser.add_argument("--workers", type=positive(int), default=None,
                        help="workers of the local schedulers / of local-cluster")
    parser.add_argument("--tile-size", type=positive(float), default=None,
                        help="side of a sky tile in degrees (default 8)")
    parser.add_argument("--workdir", default=None,
                        help="directory of the tile results (default OUTPUT.tiles)")
    resume = parser.add_mutually_exclusive_group()
    resume.add_argument("--resume", dest="resume", action="store_true", default=True,
                        help="reuse finished tiles of an interrupted run (default)")
    resume.add_argument("--no-resume", dest="resume", action="store_false",
                        help="recompute every tile")
    parser.add_argument("--keep-tiles", action="store_true",
                        help="keep the tile results after a successful run")
    parser.add_argument("--timeout", type=positive(float), default=None,
                        help="time limit per estimator and tile, seconds")
    add_column_map_argument(parser)
    parser.add_argument("--on-error", choices=("mask", "raise"), default="mask",
                        help="when an estimator fails: mask its rows (default) or stop")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Run ``astro-clustermass run``; returns the exit status."""
    from ..parallel import DEFAULT_TILE_SIZE, estimate_catalog

    out = estimate_catalog(
        args.catalog, estimators=args.estimators, events=expand_paths(args.events),
        tile_size=DEFAULT_TILE_SIZE if args.tile_size is None else args.tile_size,
        scheduler=args.scheduler,
        workers=args.workers, output=args.output, overwrite=args.overwrite,
        resume=args.resume, workdir=args.workdir, column_map=parse_column_map(args.column_map),
        on_error=args.on_error, timeout=args.timeout,
        cleanup=False if args.keep_tiles else None, progress=not args.no_progress)
    info = out.meta["astro_clustermass_run"]
    print(f"wrote {len(out)} rows to {args.output} ({info['tiles']} tiles, "
          f"{info['tiles_reused']} reused, {info['wall_s']:.1f} s)")
    all_failed(out, written=args.output)
    return 0

