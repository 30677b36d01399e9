"""Reading and writing simulator output: eSASS-like event files, truth and detection tables.

Output directory layout (one realisation)::

    manifest.yaml             seed, mode, parameters, package version, counts, chunks done
    events[_cNNNN].fits       EVENTS (RA, DEC, PI [eV], TIME, X, Y, TM_NR, FLAG, PAT_TYP,
                              SRC_ID, and STAMP in stamps mode), plus STAMPS in stamps mode
    truth[_cNNNN].fits        one row per simulated halo (field) or per stamp halo
    detections[_cNNNN].fits   the detection catalogue (eSASS column names and units) with
                              the match to the truth

Field mode writes one file of each (no suffix); stamps mode one per chunk. Every file is
written to a temporary name in the same directory and moved into place.
"""

from __future__ import annotations

import datetime
import glob
import logging
import os
from dataclasses import dataclass, field

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.table import MaskedColumn, QTable, Table, vstack

from ..io.atomic import atomic_write, atomic_write_text

log = logging.getLogger("astro_clustermass")

__all__ = ["write_events", "write_table_atomic", "write_manifest", "read_manifest",
           "read_realisation", "Realisation", "SKY_PIXEL_DEG", "TRUTH_UNITS", "DET_UNITS"]

#: eSASS sky pixel (X, Y) size: 0.05 arcsec
SKY_PIXEL_DEG = 0.05 / 3600.0

TRUTH_UNITS = {"RA": u.deg, "DEC": u.deg, "M500c": u.Msun, "R500c_kpc": u.kpc,
               "R500c_arcmin": u.arcmin, "LX": u.erg / u.s, "T": u.keV,
               "FLUX": u.erg / u.s / u.cm ** 2, "FLUX_TOT": u.erg / u.s / u.cm ** 2,
               "CR_true": u.ct / u.s, "EXPOSURE": u.s, "Xoff_arcsec": u.arcsec,
               "pa": u.rad, "xoff_pa": u.rad, "RA_X": u.deg, "DEC_X": u.deg}
DET_UNITS = {"RA": u.deg, "DEC": u.deg, "EXT": u.arcsec, "EXT_FIT": u.arcsec, "ML_CTS": u.ct,
             "ML_CTS_ERR": u.ct,
             "ML_RATE": u.ct / u.s, "ML_RATE_ERR": u.ct / u.s, "ML_EXP": u.s,
             "ML_BKG": u.arcmin ** -2, "RADEC_ERR": u.arcsec}


def write_table_atomic(table, path, extname):
    """Write ``table`` as a FITS binary table (extension ``extname``) atomically."""
    def w(tmp):
        hdu = fits.table_to_hdu(Table(table))
        hdu.name = extname
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(tmp, overwrite=True)
    atomic_write(path, w)


def write_events(path, ev, tangent, config, extra_header=None, stamps=None):
    """Write an eSASS-layout event file.

    Parameters
    ----------
    ev : dict of arrays
        RA, DEC [deg], PI [eV], TIME [s], X, Y [sky pixels], SRC_ID, and optional STAMP.
    tangent : (ra, dec)
        Tangent point of X/Y (field centre; in stamps mode X/Y are per stamp, relative to
        each stamp centre, and this is (0, 0)).
    stamps : Table, optional
        Stamp centres (stamps mode), written as extension STAMPS.
    """
    n = len(ev["RA"])
    cols = [
        fits.Column("TIME", "D", unit="s", array=ev["TIME"]),
        fits.Column("RA", "D", unit="deg", array=ev["RA"]),
        fits.Column("DEC", "D", unit="deg", array=ev["DEC"]),
        fits.Column("X", "E", unit="pixel", array=ev["X"]),
        fits.Column("Y", "E", unit="pixel", array=ev["Y"]),
        fits.Column("PI", "E", unit="eV", array=ev["PI"]),
        fits.Column("TM_NR", "B", array=ev["TM_NR"]),
        fits.Column("PAT_TYP", "B", array=np.ones(n, np.uint8)),
        fits.Column("FLAG", "J", array=np.zeros(n, np.int32)),
        fits.Column("SRC_ID", "K", array=ev["SRC_ID"]),
    ]
    if "STAMP" in ev:
        cols.append(fits.Column("STAMP", "J", array=ev["STAMP"]))
    hdu = fits.BinTableHDU.from_columns(cols, name="EVENTS")
    h = hdu.header
    names = [c.name for c in cols]
    ix, iy = names.index("X") + 1, names.index("Y") + 1
    for i, ctype, crval, cdelt in ((ix, "RA---TAN", tangent[0], -SKY_PIXEL_DEG),
                                   (iy, "DEC--TAN", tangent[1], SKY_PIXEL_DEG)):
        h[f"TCTYP{i}"] = ctype
        h[f"TCRVL{i}"] = float(crval)
        h[f"TCDLT{i}"] = cdelt
        h[f"TCRPX{i}"] = 0.0
        h[f"TLMIN{i}"] = -2.0e7
        h[f"TLMAX{i}"] = 2.0e7
    h["TELESCOP"] = ("eROSITA", "simulated (astro_clustermass.simulate)")
    h["INSTRUME"] = ("MERGED", "all seven cameras")
    h["MISSION"] = "SRG"
    h["OBS_MODE"] = "SURVEY"
    h["CREATOR"] = "astro_clustermass.simulate"
    h["DATE"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    h["TSTART"] = config.tstart
    h["TSTOP"] = config.tstop
    h["MJDREF"] = 51543.875
    h["TIMESYS"] = "TT"
    h["TIMEUNIT"] = "s"
    h["RADECSYS"] = "ICRS"
    h["EQUINOX"] = 2000.0
    h["RA_PNT"] = float(tangent[0])
    h["DEC_PNT"] = float(tangent[1])
    h["EMIN"] = (config.emin, "[keV] lower energy of simulated events")
    h["EMAX"] = (config.emax, "[keV] upper energy of simulated events")
    h["HIERARCH SRC_ID_CONVENTION"] = "halo id > 0, AGN -id < 0, background 0"
    for k, v in (extra_header or {}).items():
        h[k] = v
    hdus = [fits.PrimaryHDU(), hdu]
    if stamps is not None:
        sh = fits.table_to_hdu(Table(stamps))
        sh.name = "STAMPS"
        hdus.append(sh)
    atomic_write(path, lambda tmp: fits.HDUList(hdus).writeto(tmp, overwrite=True))


def write_manifest(path, data):
    import yaml

    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))


def read_manifest(outdir):
    import yaml

    path = os.path.join(outdir, "manifest.yaml")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{outdir!r} holds no simulator output (no manifest.yaml)")
    with open(path) as fh:
        return yaml.safe_load(fh)


def _with_units(table, units):
    q = QTable(table)
    for name, unit in units.items():
        if name in q.colnames and not isinstance(q[name], u.Quantity):
            col = q[name]
            if isinstance(col, MaskedColumn) and np.any(col.mask):
                q[name] = u.Quantity(col.filled(np.nan), unit)
            else:
                q[name] = u.Quantity(np.asarray(col), unit)
    return q


@dataclass
class Realisation:
    """One simulator output directory, as read by `read_realisation`.

    Attributes
    ----------
    outdir : str
    manifest : dict
    truth : QTable
        One row per simulated halo.
    detections : QTable
        Detection catalogue (eSASS names and units), the match columns and, for rows
        matched to a cluster, the truth columns of the halo (masked otherwise).
    event_files : list of str
    """

    outdir: str
    manifest: dict
    truth: QTable
    detections: QTable
    event_files: list = field(default_factory=list)

    @property
    def events(self):
        """All events (RA, DEC, PI, ...) as one Table (loads every event file)."""
        tabs = [Table.read(f, hdu="EVENTS") for f in self.event_files]
        if not tabs:
            return Table(names=("RA", "DEC", "PI"), dtype=("f8", "f8", "f4"))
        return vstack(tabs, metadata_conflicts="silent") if len(tabs) > 1 else tabs[0]

    def __getitem__(self, key):   # dict-style access for older callers
        return getattr(self, key)


#: truth columns copied onto matched detections
MATCH_TRUTH_COLUMNS = ("M500c", "z", "LX", "T", "R500c_kpc", "R500c_arcmin", "FLUX", "CR_true",
                       "rc", "beta", "cool_core", "rc_cc", "f_cc", "b_to_a_500c", "Xoff",
                       "RA_X", "DEC_X", "counts_exp", "central")


def attach_truth(det, truth):
    """Copy truth columns of the matched halo onto the detections (masked if unmatched)."""
    det = Table(det)
    truth = Table(truth)
    if len(truth):
        idx = {int(h): i for i, h in enumerate(np.asarray(truth["HALO_ID"]))}
    else:
        idx = {}
    rows = np.array([idx.get(int(h), -1) if m else -1
                     for h, m in zip(det["HALO_ID"], det["MATCHED"])], int)
    has = rows >= 0
    for name in MATCH_TRUTH_COLUMNS:
        if name not in truth.colnames:
            continue
        src = np.asarray(truth[name])
        vals = np.zeros(len(det), dtype=src.dtype)
        if has.any():
            vals[has] = src[rows[has]]
        det[name] = MaskedColumn(vals, mask=~has)
    return det


def read_realisation(outdir):
    """Read one simulator output directory.

    Returns
    -------
    Realisation
        ``.truth`` (QTable), ``.detections`` (QTable, eSASS columns + match + truth of the
        matched halo; ``MATCHED`` marks detections of a cluster), ``.events`` (Table,
        loaded on access), ``.event_files``, ``.manifest``.
    """
    man = read_manifest(outdir)
    det_files = sorted(glob.glob(os.path.join(outdir, "detections*.fits")))
    truth_files = sorted(glob.glob(os.path.join(outdir, "truth*.fits")))
    ev_files = sorted(glob.glob(os.path.join(outdir, "events*.fits")))
    if not det_files:
        raise FileNotFoundError(f"no detections*.fits in {outdir!r} (run not finished?)")
    dets, truths = [], []
    for f in det_files:
        t = Table.read(f, hdu="DETECTIONS")
        t["CHUNK_TAG"] = os.path.basename(f)[len("detections"):-len(".fits")]
        dets.append(t)
    for f in truth_files:
        truths.append(Table.read(f, hdu="TRUTH"))
    det = vstack(dets, metadata_conflicts="silent") if len(dets) > 1 else dets[0]
    truth = vstack(truths, metadata_conflicts="silent") if len(truths) > 1 else truths[0]
    for t in (det, truth):
        for c in t.colnames:
            if t[c].dtype.kind == "S":
                t[c] = np.char.decode(t[c]).astype(str)
    det.meta.clear()
    truth.meta.clear()
    det.meta["simulate"] = {k: man.get(k) for k in ("mode", "seed", "area_deg2", "version")}
    det_q = _with_units(det, {**TRUTH_UNITS, **DET_UNITS})
    truth_q = _with_units(truth, TRUTH_UNITS)
    return Realisation(outdir=str(outdir), manifest=man, truth=truth_q, detections=det_q,
                       event_files=ev_files)
