"""The eROSITA effective area: the package's one reader of OGIP ARF files.

The shipped ARF is that of a real eFEDS source (all seven cameras). Its ``SPECRESP``
includes the survey-averaged vignetting and the PSF-loss correction of the extraction
region; ``CORRVIGN`` and ``CORRPSF`` give them, and ``CORRCOMB`` is their combined
correction as applied by eSASS ``srctool`` (the exposure-weighted average of their
product). The on-axis, full-PSF area is therefore ``SPECRESP / CORRCOMB``.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np

from ..utils.data import package_data

__all__ = ["EffectiveArea", "read_arf", "ARF_PATH", "DATA_DIR"]

#: Instrument files shipped with the package (``../shared/data/erosita`` in the project).
DATA_DIR = package_data("erosita")
#: The eFEDS ARF shipped with the package.
ARF_PATH = os.path.join(DATA_DIR, "efeds_point_source_ARF.fits")


@dataclass(frozen=True)
class EffectiveArea:
    """The columns of an ARF's ``SPECRESP`` extension (read-only arrays).

    Attributes
    ----------
    e_lo, e_hi : ndarray
        Bin edges of the true photon energy [keV].
    specresp : ndarray
        Effective area as written [cm^2].
    corrvign, corrpsf, corrcomb : ndarray or None
        eSASS corrections (vignetting, PSF loss, combined), where the file has them.
    exposure : float
        ``EXPOSURE`` keyword of the extension [s] (0 if absent).
    path : str
    """

    e_lo: np.ndarray
    e_hi: np.ndarray
    specresp: np.ndarray
    corrvign: np.ndarray | None
    corrpsf: np.ndarray | None
    corrcomb: np.ndarray | None
    exposure: float
    path: str

    @property
    def e_mid(self):
        """Bin centres [keV]."""
        return 0.5 * (self.e_lo + self.e_hi)

    @property
    def onaxis(self):
        """Unvignetted full-PSF area ``SPECRESP / CORRCOMB`` [cm^2] (SPECRESP without
        CORRCOMB)."""
        return self.specresp if self.corrcomb is None else self.specresp / self.corrcomb


@functools.lru_cache(maxsize=4)
def read_arf(path=ARF_PATH):
    """Read an OGIP ARF (``SPECRESP`` extension) into an `EffectiveArea`.

    Parameters
    ----------
    path : str
        The ARF file (default: the shipped eFEDS ARF, `ARF_PATH`).
    """
    from astropy.io import fits

    path = os.fspath(path)
    try:
        with fits.open(path) as hdul:
            hdu = hdul["SPECRESP"]
            data, names = hdu.data, [n.upper() for n in hdu.columns.names]

            def column(name):
                if name not in names:
                    return None
                arr = np.array(data[name], dtype=float)
                arr.setflags(write=False)
                return arr

            e_lo, e_hi, area = column("ENERG_LO"), column("ENERG_HI"), column("SPECRESP")
            exposure = float(hdu.header.get("EXPOSURE", 0.0))
            corr = {k: column(k.upper()) for k in ("corrvign", "corrpsf", "corrcomb")}
    except (OSError, KeyError) as exc:
        raise OSError(f"cannot read the ARF {path!r}: {exc}") from exc
    if e_lo is None or e_hi is None or area is None:
        raise OSError(f"ARF {path!r}: SPECRESP extension lacks ENERG_LO, ENERG_HI or SPECRESP")
    return EffectiveArea(e_lo, e_hi, area, exposure=exposure, path=path, **corr)
