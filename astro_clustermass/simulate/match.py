"""Matching detections to the simulated sources, through the photons' origin.

Every simulated photon carries ``SRC_ID`` (halo id > 0, AGN id < 0, background 0). A
detection is matched by counting the photons within r_match = max(30", min(EXT, 120"))
of its position by origin:

- ``MATCH_TYPE = 'cluster'``: the halo contributing most photons gives at least 3 and
  at least as many as the brightest AGN there; ``HALO_ID`` is that halo. If several
  detections match one halo, the one with the highest DET_LIKE keeps ``'cluster'`` and
  ``MATCHED = True``; the others become ``'cluster-fragment'``.
- ``'agn'``: otherwise, when an AGN contributes at least 3 photons (``AGN_ID``).
- ``'spurious'``: neither (a background fluctuation).

``MATCHED`` (bool) is True only for ``'cluster'`` rows; ``MATCH_NPHOT`` is the number of
photons of the matched source within r_match and ``MATCH_PURITY`` their share of all
photons there.
"""

from __future__ import annotations

import numpy as np

__all__ = ["match_detections", "unit_vectors"]


def unit_vectors(ra, dec):
    ra = np.radians(ra)
    dec = np.radians(dec)
    return np.column_stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])


def match_detections(det_ra, det_dec, det_ext, ev_ra, ev_dec, ev_src, tree=None, min_phot=3,
                     det_like=None):
    """Match detections to sources (see module docstring).

    Returns
    -------
    dict of arrays: MATCH_TYPE (str), MATCHED (bool), HALO_ID (int, 0 if none),
    AGN_ID (int, 0 if none), MATCH_NPHOT, MATCH_PURITY
    """
    from scipy.spatial import cKDTree

    n = len(det_ra)
    out = {"MATCH_TYPE": np.full(n, "spurious", dtype="U20"), "MATCHED": np.zeros(n, bool),
           "HALO_ID": np.zeros(n, np.int64), "AGN_ID": np.zeros(n, np.int64),
           "MATCH_NPHOT": np.zeros(n, np.int32), "MATCH_PURITY": np.zeros(n)}
    if n == 0 or len(ev_ra) == 0:
        return out
    if tree is None:
        tree = cKDTree(unit_vectors(ev_ra, ev_dec))
    rmatch = np.maximum(30.0, np.minimum(np.asarray(det_ext, float), 120.0))
    chord = 2 * np.sin(np.radians(rmatch / 3600.0) / 2)
    dvec = unit_vectors(det_ra, det_dec)
    ev_src = np.asarray(ev_src)
    for i in range(n):
        idx = tree.query_ball_point(dvec[i], chord[i])
        if not idx:
            continue
        ids, cnt = np.unique(ev_src[idx], return_counts=True)
        tot = cnt.sum()
        pos = ids > 0
        neg = ids < 0
        nc = cnt[pos].max() if pos.any() else 0
        na = cnt[neg].max() if neg.any() else 0
        if nc >= min_phot and nc >= na:
            out["MATCH_TYPE"][i] = "cluster"
            out["HALO_ID"][i] = ids[pos][np.argmax(cnt[pos])]
            out["MATCH_NPHOT"][i] = nc
            out["MATCH_PURITY"][i] = nc / tot
        elif na >= min_phot:
            out["MATCH_TYPE"][i] = "agn"
            out["AGN_ID"][i] = -ids[neg][np.argmax(cnt[neg])]
            out["MATCH_NPHOT"][i] = na
            out["MATCH_PURITY"][i] = na / tot
    # one detection per halo
    cl = np.flatnonzero(out["MATCH_TYPE"] == "cluster")
    if cl.size:
        prio = np.asarray(det_like, float)[cl] if det_like is not None else \
            np.asarray(out["MATCH_NPHOT"], float)[cl]
        order = cl[np.lexsort((-prio, out["HALO_ID"][cl]))]
        first = np.ones(order.size, bool)
        first[1:] = out["HALO_ID"][order][1:] != out["HALO_ID"][order][:-1]
        out["MATCH_TYPE"][order[~first]] = "cluster-fragment"
    out["MATCHED"] = out["MATCH_TYPE"] == "cluster"
    return out
