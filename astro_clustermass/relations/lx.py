"""L_X - M500c - z relations (rest-frame 0.5-2 keV luminosity within R500c).

A luminosity is not a direct observable: it was computed from a flux with a luminosity
distance in *some* cosmology. `luminosity_to_relation_cosmology` rescales it to the
cosmology the relation was calibrated in, L' = L (D_L,rel(z) / D_L,in(z))^2, before
the relation is inverted.
"""

from __future__ import annotations

import numpy as np
from astropy import units as u

from .base import ScalingRelation, load_relation

__all__ = ["LuminosityMassRelation", "luminosity_to_relation_cosmology", "chiu22"]


class LuminosityMassRelation(ScalingRelation):
    """A `ScalingRelation` whose observable is a luminosity (``LX``)."""

    def convert_luminosity(self, luminosity, z, cosmology):
        """Rescale ``luminosity`` computed in ``cosmology`` to the relation's cosmology."""
        return luminosity_to_relation_cosmology(luminosity, z, cosmology,
                                                self.fiducial_cosmology)


def luminosity_to_relation_cosmology(luminosity, z, from_cosmology, to_cosmology):
    """L_X computed with ``from_cosmology`` distances, re-expressed with ``to_cosmology``.

    Parameters
    ----------
    luminosity : `~astropy.units.Quantity`
        [erg/s].
    z : array
    from_cosmology, to_cosmology : `~astropy.cosmology.Cosmology`

    Returns
    -------
    `~astropy.units.Quantity`
        L * (D_L,to(z) / D_L,from(z))**2, same unit as ``luminosity``.
    """
    if from_cosmology is None or from_cosmology is to_cosmology:
        return u.Quantity(luminosity)
    z = np.asarray(z, dtype=float)
    zz = np.where(np.isfinite(z) & (z > 0), z, 0.1)
    ratio = (to_cosmology.luminosity_distance(zz) / from_cosmology.luminosity_distance(zz))
    ratio = np.where(np.isfinite(z) & (z > 0), ratio.to_value(u.one), np.nan)
    return u.Quantity(luminosity) * ratio ** 2


def chiu22():
    """The L_X-M relation of Chiu et al. (2022), Eq. 67, as shipped (``lx-chiu22``)."""
    return load_relation("lx-chiu22", cls=LuminosityMassRelation)
