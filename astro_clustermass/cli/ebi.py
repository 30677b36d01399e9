"""``astro-clustermass ebi``: energy-band images of catalogue clusters from event files.

Example::

    astro-clustermass ebi clusters.fits --events events/*.fits -o ebis.h5
"""

from __future__ import annotations

from ._common import expand_paths

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    """Arguments of ``astro-clustermass ebi``."""
    parser.add_argument("catalog", nargs="?",
                        help="cluster catalogue with RA, DEC [deg] (FITS, ECSV, HDF5)")
    parser.add_argument("--events", nargs="+", metavar="FILE",
                        help="event files (FITS EVENTS with RA, DEC, PI [eV]; globs allowed)")
    parser.add_argument("-o", "--output", required=True, help="output HDF5 EBI stack")
    parser.add_argument("--chunk-rows", type=int, default=1_000_000,
                        help="event-file rows read at a time (default 1e6)")
    parser.add_argument("--no-quality-filter", action="store_true",
                        help="keep all FLAG / PAT_TYP values")
    parser.add_argument("--convert-pickle", metavar="PICKLE",
                        help="instead: convert a teaching-layout pandas pickle to HDF5")
    parser.add_argument("--allow-pickle", action="store_true",
                        help="confirm that the pickle is trusted (unpickling runs code)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")


def run(args):
    """Run ``astro-clustermass ebi``; returns the exit status."""
    if args.convert_pickle:
        from ..io.ebi_stack import convert_teaching_pickle

        convert_teaching_pickle(args.convert_pickle, args.output,
                                allow_pickle=args.allow_pickle, overwrite=args.overwrite)
        print(f"converted {args.convert_pickle} to {args.output}")
        return 0
    if not args.catalog or not args.events:
        raise SystemExit("astro-clustermass ebi needs a catalogue and --events FILE ...")
    from ..utils.optional import require

    require("h5py", feature="EBI stacks (HDF5)")  # before the images, not after
    import astropy.units as u
    from astropy.coordinates import SkyCoord
    from astropy.table import Table

    from ..ebi import EBIParameters, energy_band_images
    from ..esass import read_catalog
    from ..io.ebi_stack import write_ebi_stack
    from ..io.events import EventList

    table = read_catalog(args.catalog)
    for c in ("RA", "DEC"):
        if c not in table.colnames:
            raise SystemExit(f"{args.catalog}: no {c} column")
    ra = u.Quantity(table["RA"], u.deg)
    dec = u.Quantity(table["DEC"], u.deg)
    kw = {"flag_mask": None, "pat_typ": None} if args.no_quality_filter else {}
    ev = EventList.read(expand_paths(args.events), chunk_rows=args.chunk_rows, **kw)
    images = energy_band_images(ev, SkyCoord(ra, dec), progress=True)
    write_ebi_stack(args.output, images, EBIParameters(), catalog=Table(table),
                    overwrite=args.overwrite)
    print(f"wrote {len(images)} energy-band images from {len(ev)} photons to {args.output}")
    return 0
