"""Which event files have photons where on the sky (for reading only what a tile needs)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from .atomic import atomic_write_text
from .event_sources import EVENT_CHUNK_ROWS, _FileSource, in_box

__all__ = ["EventFileIndex"]


@dataclass
class _EventFile:
    path: str
    size: int
    mtime_ns: int
    n_events: int
    dec_min: float
    dec_max: float
    ra_cells: list  # occupied 1-degree RA cells


def _index_file(path):
    """`_EventFile` of one event file: streams its RA/DEC once."""
    st = os.stat(path)
    source = _FileSource([path], None, EVENT_CHUNK_ROWS)
    cells = np.zeros(360, bool)
    dmin, dmax = np.inf, -np.inf
    for cols, _, _ in source.chunks(("RA", "DEC")):
        ra, dec = np.asarray(cols["RA"], float), np.asarray(cols["DEC"], float)
        ok = np.isfinite(ra) & np.isfinite(dec)
        if ok.any():
            cells[np.mod(ra[ok], 360.0).astype(int) % 360] = True
            dmin = min(dmin, float(dec[ok].min()))
            dmax = max(dmax, float(dec[ok].max()))
    return _EventFile(path, st.st_size, st.st_mtime_ns, source.n_rows, dmin, dmax,
                      np.flatnonzero(cells).tolist())


class EventFileIndex:
    """Where on the sky each event file has photons (1-degree RA cells, Dec range).

    Built once by streaming the RA/DEC columns (`EVENT_CHUNK_ROWS` at a time; one Dask
    task per file when ``compute`` is given) and cached as JSON; a tile task opens only
    the files that overlap its search box.

    Parameters
    ----------
    paths : sequence of path-like
        Event files (FITS with an ``EVENTS`` extension holding RA, DEC [deg], PI).
    cache : path-like, optional
        JSON file to read/write the index (entries are reused while a file's size
        and modification time are unchanged).
    compute : callable, optional
        ``compute(list_of_delayed) -> list of results``, to index the files as tasks.
    """

    def __init__(self, paths, cache=None, compute=None):
        cached = {}
        if cache is not None and os.path.exists(cache):
            try:
                with open(cache) as fh:
                    cached = {d["path"]: _EventFile(**d) for d in json.load(fh)}
            except (ValueError, TypeError, KeyError):
                cached = {}
        entries, todo = [], []
        for path in paths:
            path = os.path.abspath(os.fspath(path))
            if not os.path.exists(path):
                raise FileNotFoundError(f"event file {path!r} does not exist")
            st = os.stat(path)
            hit = cached.get(path)
            if hit is not None and hit.size == st.st_size and hit.mtime_ns == st.st_mtime_ns:
                entries.append(hit)
            else:
                entries.append(None)
                todo.append((len(entries) - 1, path))
        if todo:
            # One task per file on the run's scheduler (``compute``), else here.
            if compute is None:
                done = [_index_file(p) for _, p in todo]
            else:
                import dask

                done = compute([dask.delayed(_index_file, pure=False)(
                    p, dask_key_name=f"acm-index-{k}") for k, (_, p) in enumerate(todo)])
            for (i, _), entry in zip(todo, done):
                entries[i] = entry
        self.files = entries
        if cache is not None:
            atomic_write_text(cache, json.dumps([f.__dict__ for f in self.files]))

    def overlapping(self, box):
        """Event files with photons in the search box ``(ra_lo, ra_hi, dec_lo, dec_hi)``."""
        ra_lo, ra_hi, dec_lo, dec_hi = box
        out = []
        for f in self.files:
            if f.n_events == 0 or f.dec_max < dec_lo or f.dec_min > dec_hi:
                continue
            cells = np.asarray(f.ra_cells, dtype=float)
            # a cell [c, c+1) overlaps the box if either edge or its middle is inside
            if in_box(np.concatenate([cells, cells + 0.999999, cells + 0.5]),
                      np.full(3 * len(cells), 0.5 * (dec_lo + dec_hi)), box).any():
                out.append(f.path)
        return out
