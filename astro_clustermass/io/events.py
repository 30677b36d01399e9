"""Photons from X-ray event files: the package's one reader of eSASS ``EVENTS``.

`EventList` holds the RA, DEC [deg] and PI [eV] of the photons that pass the eSASS
quality cuts (``FLAG``, ``PAT_TYP``, ``PI > 0``), sorted by a spatial index
(declination strips of ``strip_deg``, RA within each strip) so that the photons of one
cluster are found with a few binary searches: the cost per cluster does not depend on
the total number of photons. Event files are read in row chunks from memory-mapped
FITS; an index larger than memory is built on disk (``memmap``) strip group by strip
group. ``EventList.read(paths, box=...)`` keeps only the photons of a sky box (a tile of
`astro_clustermass.parallel`), so a tile's photons go from the files to the index
without a copy on disk.

Energy-band images (`astro_clustermass.ebi`), aperture photometry
(`astro_clustermass.photometry`), the CNN ensemble and catalogue-scale runs all read
photons through this module, so they count the same photons.
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
import weakref

import numpy as np

from ..utils.exceptions import InputDataWarning
from .event_sources import (  # noqa: F401
    DEFAULT_FLAG_MASK,
    DEFAULT_PAT_TYP,
    EVENT_CHUNK_ROWS,
    _chunk_arrays,
    _FileSource,
    _TableSource,
    in_box,
)

__all__ = ["EventList", "as_event_list", "in_box", "DEFAULT_FLAG_MASK", "DEFAULT_PAT_TYP",
           "EVENT_CHUNK_ROWS"]


_ARCSEC_PER_RAD = 180.0 / math.pi * 3600.0
_STRIP_RA_WIDTH = 400.0  # key = strip * 400 + RA: RA in [0, 360) never reaches the next strip


class EventList:
    """Photons (RA, DEC [deg], PI [eV]) with a spatial index for cut-outs.

    Build one from an `~astropy.table.Table` (``EventList(table)``, columns ``RA``,
    ``DEC`` in deg and ``PI`` in eV; units, when the columns carry them, are converted)
    or from eSASS event files with `EventList.read`.

    Quality cuts, applied when the columns exist (eSASS conventions; document these in
    any analysis):

    - ``FLAG``: rows with any bit of ``flag_mask`` set are dropped (default
      `DEFAULT_FLAG_MASK` = ``0xC00FFF30``, the ``evtool flag=0xc00fff30`` of eROSITA
      imaging analyses); ``flag_mask=None`` keeps all;
    - ``PAT_TYP``: only valid patterns ``pat_typ`` (default 1-4, ``evtool pattern=15``);
      ``pat_typ=None`` keeps all;
    - ``PI <= 0`` (secondary pixels of a pattern in eSASS) and non-finite RA, DEC, PI
      are always dropped.

    Photons are kept in index order (sorted by declination strip, then RA); `ra`,
    `dec`, `pi` give them in that order.

    Parameters
    ----------
    table : `~astropy.table.Table`
    flag_mask : int or None
    pat_typ : sequence of int or None
    strip_deg : float
        Height of the declination strips of the index [deg].
    deduplicate : bool
        Drop exact duplicate photons (same RA, DEC, PI and TIME; needs a TIME column).
    """

    def __init__(self, table=None, *, flag_mask=DEFAULT_FLAG_MASK, pat_typ=DEFAULT_PAT_TYP,
                 strip_deg=0.05, deduplicate=False, _source=None, memmap=False,
                 index_dir=None, group_rows=None, _box=None):
        if _source is None:
            if table is None:
                raise TypeError("EventList needs a table (or use EventList.read(paths))")
            if isinstance(table, EventList):
                raise TypeError("already an EventList")
            if not hasattr(table, "colnames"):
                from astropy.table import Table

                try:
                    table = Table(table)
                except Exception as exc:
                    raise TypeError(f"EventList needs an astropy Table with RA, DEC, PI; got "
                                    f"{type(table).__name__}") from exc
            _source = _TableSource(table, chunk_rows=max(len(table), 1))
        self.flag_mask = flag_mask
        self.pat_typ = None if pat_typ is None else tuple(int(p) for p in pat_typ)
        self.strip_deg = float(strip_deg)
        if not 0 < self.strip_deg <= 10:
            raise ValueError(f"strip_deg must be in (0, 10]; got {strip_deg!r}")
        self.n_strips = int(math.ceil(180.0 / self.strip_deg)) + 1
        self.deduplicate = bool(deduplicate)
        self.box = None if _box is None else tuple(float(b) for b in _box)
        self.files = list(getattr(_source, "paths", []))
        self.rejected = {}
        self.n_duplicates = 0
        self._tmpdir = None
        self._build(_source, memmap, index_dir, group_rows)

    # -- constructors
    @classmethod
    def read(cls, paths, *, hdu=None, chunk_rows=EVENT_CHUNK_ROWS, flag_mask=DEFAULT_FLAG_MASK,
             pat_typ=DEFAULT_PAT_TYP, strip_deg=0.05, deduplicate=None, memmap=None,
             index_dir=None, max_memory_rows=50_000_000, box=None):
        """Read the photons of one or several eSASS event files.

        Parameters
        ----------
        paths : path-like or sequence of path-like
            FITS files with an ``EVENTS`` extension (else the first table) holding RA,
            DEC [deg] and PI [eV]. Several files are merged: a cluster near a tile edge
            gets the photons of every file that covers it.
        hdu : int or str, optional
            Extension to read instead of ``EVENTS``.
        chunk_rows : int
            Rows read at a time (the files are memory-mapped; peak memory of the reading
            is about ``chunk_rows`` x the row size, plus the index).
        flag_mask, pat_typ, strip_deg
            See `EventList`.
        deduplicate : bool, optional
            Drop photons present in more than one file (eRASS sky tiles overlap by about
            20'), recognised as equal RA, DEC, PI and TIME. Default: True when several
            files are given and they have a TIME column.
        memmap : bool, optional
            Keep the index in files under ``index_dir`` (memory-mapped) instead of in
            memory. Default: when the files hold more than ``max_memory_rows`` rows.
            The index is then built strip group by strip group, two passes over the
            files, with peak memory about ``chunk_rows`` plus one group.
        index_dir : str, optional
            Where the memory-mapped index goes (default: a temporary directory removed
            with the EventList).
        max_memory_rows : int
            See ``memmap``.
        box : tuple of float, optional
            Keep only the photons in the sky box ``(ra_lo, ra_hi, dec_lo, dec_hi)`` [deg]
            (RA may wrap; see `in_box`), e.g. a sky tile plus a margin.
        """
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        paths = list(paths)
        if not paths:
            raise ValueError("EventList.read needs at least one event file")
        src = _FileSource(paths, hdu, chunk_rows)
        if deduplicate is None:
            deduplicate = len(paths) > 1
        if memmap is None:
            memmap = src.n_rows > max_memory_rows
        return cls(None, flag_mask=flag_mask, pat_typ=pat_typ, strip_deg=strip_deg,
                   deduplicate=deduplicate, _source=src, memmap=memmap, index_dir=index_dir,
                   group_rows=max(4 * int(chunk_rows), 1), _box=box)

    # -- index construction
    def _strip_of(self, dec):
        return np.floor((np.asarray(dec, float) + 90.0) / self.strip_deg).astype(np.int64)

    def _key(self, ra, dec):
        return self._strip_of(dec) * _STRIP_RA_WIDTH + ra

    def _count(self, rejected):
        for k, v in rejected.items():
            self.rejected[k] = self.rejected.get(k, 0) + v

    def _filtered_chunks(self, source, keep_time):
        wanted = ("RA", "DEC", "PI", "FLAG", "PAT_TYP") + (("TIME",) if keep_time else ())
        for cols, units, where in source.chunks(wanted):
            if keep_time and cols.get("TIME") is None:
                if self.deduplicate:
                    warnings.warn(f"{where} has no TIME column: photons present in two "
                                  "files cannot be recognised and are kept twice",
                                  InputDataWarning, stacklevel=2)
                self.deduplicate = False
                keep_time = False
            arrays, rejected = _chunk_arrays(cols, units, self.flag_mask, self.pat_typ, where,
                                             keep_time, self.box)
            self._count(rejected)
            yield arrays

    def _sort_group(self, key, dec, pi, time):
        """Order of one group (sorted by key; ties broken so duplicates are adjacent)
        and the mask of rows kept after de-duplication."""
        if self.deduplicate and time is not None:
            order = np.lexsort((time, pi, dec, key))
            k, d, p, t = key[order], dec[order], pi[order], time[order]
            dup = np.zeros(len(order), bool)
            if len(order) > 1:
                dup[1:] = (k[1:] == k[:-1]) & (d[1:] == d[:-1]) & (p[1:] == p[:-1]) & \
                          (t[1:] == t[:-1])
            return order, ~dup
        return np.argsort(key, kind="stable"), None

    def _build(self, source, memmap, index_dir, group_rows):
        keep_time = self.deduplicate
        if not memmap:
            parts = list(self._filtered_chunks(source, keep_time))
            ra = np.concatenate([p[0] for p in parts]) if parts else np.empty(0)
            dec = np.concatenate([p[1] for p in parts]) if parts else np.empty(0)
            pi = np.concatenate([p[2] for p in parts]) if parts else np.empty(0, np.float32)
            time = None
            if self.deduplicate and parts and all(len(p) > 3 and p[3] is not None
                                                  for p in parts):
                time = np.concatenate([p[3] for p in parts])
            del parts
            key = self._key(ra, dec)
            del ra
            order, keep = self._sort_group(key, dec, pi, time)
            if keep is not None:
                order = order[keep]
                self.n_duplicates = int((~keep).sum())
            self._keys = key[order]
            self._dec = dec[order]
            self._pi = pi[order]
            del key, dec, pi, order
        else:
            self._build_memmap(source, index_dir, group_rows, keep_time)
        self._strip_start = np.searchsorted(
            self._keys, np.arange(self.n_strips + 1) * _STRIP_RA_WIDTH)

    def _build_memmap(self, source, index_dir, group_rows, keep_time):
        # pass 1: photons per declination strip
        counts = np.zeros(self.n_strips, np.int64)
        for arrays in self._filtered_chunks(source, False):
            counts += np.bincount(self._strip_of(arrays[1]), minlength=self.n_strips)
        self.rejected = {}
        # strip groups of at most ~group_rows photons (a larger strip is its own group)
        group_of = np.empty(self.n_strips, np.int64)
        g, acc = 0, 0
        for s in range(self.n_strips):
            if acc and acc + counts[s] > group_rows:
                g, acc = g + 1, 0
            group_of[s] = g
            acc += counts[s]
        n_groups = g + 1
        gcount = np.bincount(group_of, weights=counts, minlength=n_groups).astype(np.int64)
        gstart = np.concatenate([[0], np.cumsum(gcount)])
        total = int(gstart[-1])
        if index_dir is None:
            index_dir = self._tmpdir = tempfile.mkdtemp(prefix="acm_ebi_index_")
            weakref.finalize(self, _remove_dir, index_dir)
        os.makedirs(index_dir, exist_ok=True)

        def mm(name, dtype):
            return np.lib.format.open_memmap(os.path.join(index_dir, name), mode="w+",
                                             dtype=dtype, shape=(max(total, 1),))

        key, dec, pi = mm("key.npy", np.float64), mm("dec.npy", np.float64), \
            mm("pi.npy", np.float32)
        time = mm("time.npy", np.float64) if keep_time else None
        # pass 2: scatter every chunk into its group's region
        ptr = gstart[:-1].copy()
        for arrays in self._filtered_chunks(source, keep_time):
            ra_c, dec_c, pi_c = arrays[:3]
            t_c = arrays[3] if keep_time and len(arrays) > 3 else None
            if t_c is None and time is not None and len(ra_c):
                time = None
            k_c = self._key(ra_c, dec_c)
            grp = group_of[self._strip_of(dec_c)]
            order = np.argsort(grp, kind="stable")
            grp = grp[order]
            bounds = np.searchsorted(grp, np.arange(n_groups + 1))
            for gi in np.nonzero(np.diff(bounds))[0]:
                sl = order[bounds[gi]:bounds[gi + 1]]
                a, b = ptr[gi], ptr[gi] + len(sl)
                key[a:b], dec[a:b], pi[a:b] = k_c[sl], dec_c[sl], pi_c[sl]
                if time is not None:
                    time[a:b] = t_c[sl]
                ptr[gi] = b
        # pass 3: sort every group in memory; compact in place when duplicates go
        out = 0
        for gi in range(n_groups):
            a, b = gstart[gi], gstart[gi + 1]
            if b == a:
                continue
            kg, dg, pg = np.array(key[a:b]), np.array(dec[a:b]), np.array(pi[a:b])
            tg = np.array(time[a:b]) if time is not None else None
            order, keep = self._sort_group(kg, dg, pg, tg)
            if keep is not None:
                self.n_duplicates += int((~keep).sum())
                order = order[keep]
            n = len(order)
            key[out:out + n], dec[out:out + n], pi[out:out + n] = kg[order], dg[order], pg[order]
            out += n
        for a in (key, dec, pi):
            a.flush()
        self._keys, self._dec, self._pi = key[:out], dec[:out], pi[:out]
        if time is not None:
            del time
            try:
                os.remove(os.path.join(index_dir, "time.npy"))
            except OSError:
                pass
        self.index_dir = index_dir

    # -- access
    def __len__(self):
        return len(self._keys)

    def __repr__(self):
        where = f", {len(self.files)} file(s)" if self.files else ""
        return f"<EventList {len(self)} photons{where}>"

    @property
    def ra(self):
        """RA [deg] of the photons (index order)."""
        return self._keys - self._strip_of(self._dec) * _STRIP_RA_WIDTH

    @property
    def dec(self):
        """Dec [deg] of the photons (index order)."""
        return self._dec

    @property
    def pi(self):
        """PI [eV] of the photons (index order)."""
        return self._pi

    @property
    def energy(self):
        """Photon energies, `~astropy.units.Quantity` [keV] (``PI / 1000``)."""
        import astropy.units as u

        return np.asarray(self._pi, float) / 1000.0 * u.keV

    # -- queries
    def _ranges(self, ra0, dec0, half_arcsec):
        """Index ranges (start, stop, query id, strip key offset) holding every photon
        whose tangent-plane offsets from (ra0, dec0) [deg, arrays] are within
        +-half_arcsec."""
        ra0 = np.asarray(ra0, float)
        dec0 = np.asarray(dec0, float)
        t = half_arcsec / _ARCSEC_PER_RAD
        # sky positions of the square's corners and edge midpoints: the square's
        # declination extremes are among them (edges are great-circle arcs, symmetric
        # about the central meridian) and its RA extremes are at the corners.
        xs = np.array([-t, 0, t, -t, t, -t, 0, t])
        ys = np.array([-t, -t, -t, 0, 0, t, t, t])
        d0 = np.radians(dec0)[:, None]
        sd0, cd0 = np.sin(d0), np.cos(d0)
        den = cd0 - ys * sd0
        dec_pts = np.degrees(np.arctan2(sd0 + ys * cd0, np.hypot(xs, den)))
        dra = np.degrees(np.arctan2(xs, den))
        margin = 1e-6 + 2e-3 * half_arcsec / 3600.0
        dmin = dec_pts.min(axis=1) - margin
        dmax = dec_pts.max(axis=1) + margin
        pole = (den <= 0).any(axis=1)  # a celestial pole is in (or beyond) the square
        dmax = np.where(pole & (dec0 > 0), 90.0, dmax)
        dmin = np.where(pole & (dec0 <= 0), -90.0, dmin)
        full = pole | (dmax >= 90) | (dmin <= -90)
        dra_max = np.abs(dra).max(axis=1) + margin
        full |= dra_max >= 180
        s_lo = np.clip(self._strip_of(np.maximum(dmin, -90)), 0, self.n_strips - 1)
        s_hi = np.clip(self._strip_of(np.minimum(dmax, 90)), 0, self.n_strips - 1)
        nst = s_hi - s_lo + 1
        qid = np.repeat(np.arange(len(ra0)), nst)
        strip = np.repeat(s_lo, nst) + (np.arange(nst.sum()) - np.repeat(np.cumsum(nst) - nst,
                                                                         nst))
        lo = np.mod(ra0 - dra_max, 360.0)[qid]
        hi = np.mod(ra0 + dra_max, 360.0)[qid]
        f = full[qid]
        wrap = ~f & (lo > hi)
        base = strip * _STRIP_RA_WIDTH
        # [lo, hi] (or [0, 360) when full) and, when wrapping, [0, hi] + [lo, 360)
        a_lo = np.where(f | wrap, 0.0, lo)
        a_hi = np.where(f, 360.0, hi)
        starts = [np.searchsorted(self._keys, base + a_lo, "left")]
        stops = [np.searchsorted(self._keys, base + a_hi, "right")]
        qids, bases = [qid], [base]
        if wrap.any():
            w = np.nonzero(wrap)[0]
            starts.append(np.searchsorted(self._keys, base[w] + lo[w], "left"))
            stops.append(np.searchsorted(self._keys, base[w] + 360.0, "left"))
            qids.append(qid[w])
            bases.append(base[w])
        return (np.concatenate(starts), np.concatenate(stops), np.concatenate(qids),
                np.concatenate(bases))

    def photons_around(self, ra0, dec0, half_arcsec):
        """The photons in the tangent-plane squares around many centres.

        Parameters
        ----------
        ra0, dec0 : ndarray
            Centres [deg].
        half_arcsec : float
            Half side of the squares [arcsec]. A photon may be returned for several
            centres; some just outside a square are returned too (cut them on the
            projected offsets).

        Returns
        -------
        query : ndarray of int
            Index of the centre of each returned photon.
        dra : ndarray of float
            RA of the photon minus RA of its centre [rad] (in (-pi, pi] only for
            squares away from the poles; use it through sin/cos).
        dec : ndarray of float
            Declination of the photon [deg].
        pi : ndarray of float32
            PI of the photon [eV].
        """
        ra0 = np.asarray(ra0, float)
        starts, stops, qid, base = self._ranges(ra0, np.asarray(dec0, float), half_arcsec)
        lens = np.maximum(stops - starts, 0)
        total = int(lens.sum())
        if total == 0:
            return (np.empty(0, np.int64), np.empty(0), np.empty(0),
                    np.empty(0, np.float32))
        idx = np.arange(total, dtype=np.int64)
        idx -= np.repeat(np.cumsum(lens) - lens - starts, lens)
        # RA offset from the centre: key - (strip * 400 + ra0) for the range's strip
        da = self._keys[idx]
        da -= np.repeat(base + ra0[qid], lens)
        da *= np.pi / 180.0
        return np.repeat(qid, lens), da, self._dec[idx], self._pi[idx]

    def select(self, center, half_size):
        """Indices (index order) of the photons in the tangent-plane square of half side
        ``half_size`` (an angle `~astropy.units.Quantity`) around ``center`` (a scalar
        `~astropy.coordinates.SkyCoord`), plus possibly some just outside it."""
        import astropy.units as u

        ra, dec = _center_arrays(center)
        if ra.size != 1:
            raise ValueError("select takes one centre")
        starts, stops, _, _ = self._ranges(ra, dec, u.Quantity(half_size, u.arcsec).value)
        return _gather(starts, stops)[0]


def _remove_dir(path):
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _gather(starts, stops):
    """Concatenated ``arange(start, stop)`` of every range and the range index per item."""
    lens = np.maximum(stops - starts, 0)
    total = int(lens.sum())
    if total == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    which = np.repeat(np.arange(len(lens)), lens)
    offs = np.cumsum(lens) - lens
    idx = np.arange(total, dtype=np.int64) - np.repeat(offs - starts, lens)
    return idx, which


def as_event_list(events):
    """``events`` as an `EventList`: an EventList, a Table of photons or event-file path(s)."""
    if isinstance(events, EventList):
        return events
    if isinstance(events, (str, os.PathLike)) or (
            isinstance(events, (list, tuple)) and events
            and all(isinstance(e, (str, os.PathLike)) for e in events)):
        return EventList.read(events)
    if hasattr(events, "colnames"):
        return EventList(events)
    raise TypeError("events must be an EventList, an astropy Table of photons or event-file "
                    f"path(s); got {type(events).__name__}")


def _center_arrays(centers):
    """ICRS RA, Dec [deg] arrays of a SkyCoord (1-D), with a clear error for NaNs."""
    from astropy.coordinates import ICRS, SkyCoord

    if not isinstance(centers, SkyCoord):
        raise TypeError("centres must be an astropy SkyCoord (e.g. SkyCoord(ra * u.deg, "
                        f"dec * u.deg)); got {type(centers).__name__}")
    c = centers if isinstance(centers.frame, ICRS) else centers.icrs
    ra = np.atleast_1d(np.asarray(c.ra.deg, float))
    dec = np.atleast_1d(np.asarray(c.dec.deg, float))
    bad = ~(np.isfinite(ra) & np.isfinite(dec))
    if bad.any():
        rows = np.nonzero(bad)[0]
        raise ValueError(f"{bad.sum()} centre(s) have non-finite RA/DEC (positions "
                         f"{rows[:10].tolist()}{' ...' if len(rows) > 10 else ''})")
    return ra, dec


