"""``astro-clustermass photometry``: aperture count rates and L_X from images or events.

Example::

    astro-clustermass photometry clusters.fits -o measured.fits --counts img_02_23.fits \\
        --exposure expmap.fits --radius R500c_arcmin --regions point_sources.reg
"""

from __future__ import annotations

import numpy as np
from astropy import units as u

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    """Arguments of ``astro-clustermass photometry`` (see `run`)."""
    parser.add_argument("catalog", help="cluster catalogue with RA, DEC (and z) columns")
    parser.add_argument("-o", "--output", required=True, help="output catalogue file")
    parser.add_argument("--counts", required=True,
                        help="counts image (FITS, 0.2-2.3 keV) or eSASS event file (EVENTS)")
    parser.add_argument("--exposure", required=True,
                        help="exposure map (FITS, s, same grid as the counts) or a number [s]")
    parser.add_argument("--radius", required=True,
                        help="aperture radius: a column name (arcmin if unitless) or a value "
                             "in arcsec")
    parser.add_argument("--annulus", type=float, nargs=2, default=(1.5, 2.5),
                        metavar=("IN", "OUT"), help="background annulus in units of the radius")
    parser.add_argument("--regions", help="DS9 region file of sources to mask")
    parser.add_argument("--kT", default=None,
                        help="temperature for the ECF [keV] or a column name (default: T "
                             "column, else 3 keV)")
    parser.add_argument("--nh", type=float, default=None, help="Galactic N_H [cm^-2]")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")


def run(args):
    """Measure count rates (and L_X) for every cluster and write the catalogue."""
    from astropy.io import fits
    from astropy.wcs import WCS

    from ..esass import read_catalog, write_table
    from ..io.events import EventList
    from ..photometry import PhotometryError, counts_image_from_events, measure_catalog

    table = read_catalog(args.catalog)

    def first_image(hdul):
        return next((h for h in hdul if h.is_image and h.data is not None
                     and h.data.ndim == 2), None)

    exp_wcs = None
    try:
        exposure = float(args.exposure)
    except ValueError:
        with fits.open(args.exposure) as hdul:
            hdu = first_image(hdul)
            if hdu is None:
                raise PhotometryError(f"{args.exposure}: no 2-D exposure image") from None
            exposure = np.asarray(hdu.data, float)
            exp_wcs = WCS(hdu.header).celestial
    with fits.open(args.counts) as hdul:
        image_hdu = first_image(hdul)
        if image_hdu is not None:
            counts = np.asarray(image_hdu.data, float)
            wcs = WCS(image_hdu.header).celestial
        elif "EVENTS" in hdul:
            if exp_wcs is None:
                raise PhotometryError(f"{args.counts} is an event file: give an exposure "
                                      "map FITS, whose grid and WCS the events are binned on")
            wcs = exp_wcs
            counts = counts_image_from_events(EventList.read(args.counts), wcs, exposure.shape)
        else:
            raise PhotometryError(f"{args.counts}: no 2-D image and no EVENTS extension")
    radius = args.radius
    if radius not in table.colnames:
        try:
            radius = float(radius) * u.arcsec
        except ValueError:
            raise PhotometryError(f"--radius {args.radius!r} is neither a column of the "
                                  "catalogue nor a number of arcsec") from None
    kT = args.kT
    if kT is not None and kT not in table.colnames:
        kT = float(kT) * u.keV
    out = measure_catalog(table, counts, exposure, wcs, radius, annulus=tuple(args.annulus),
                          regions=args.regions, kT=kT, nh=args.nh)
    write_table(out, args.output, overwrite=args.overwrite)
    ok = np.isfinite(np.asarray(out["count_rate"].value if hasattr(out["count_rate"], "value")
                                else out["count_rate"], float))
    print(f"wrote {len(out)} rows ({ok.sum()} with count rates) to {args.output}")
    return 0
