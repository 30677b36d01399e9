"""Mass estimators built on scaling relations (``lx-chiu22``, ``cr-erass1``, ...).

Each shipped YAML parameter set becomes an estimator of the same name. The estimator
reads ``z`` and the relation's observable (``LX`` or ``count_rate``) and, when present,
its error column, and inverts the relation (see
`~astro_clustermass.relations.base.ScalingRelation.invert`).
"""

from __future__ import annotations

import numpy as np

from ..core import MassEstimator
from .base import RelationError, ScalingRelation, load_relation
from .lx import LuminosityMassRelation

__all__ = ["ScalingRelationEstimator", "make_estimator"]

_COSMO_CHOICES = ("relation", "input")


class ScalingRelationEstimator(MassEstimator):
    """M500c from an observable - mass - redshift scaling relation.

    Parameters
    ----------
    relation : str or `ScalingRelation`
        Shipped name (``"lx-chiu22"``, ``"cr-erass1"``), path to a YAML parameter set,
        or a relation object.
    name : str, optional
        Estimator name (default: the relation's name).
    cosmology : `~astropy.cosmology.Cosmology`, optional
        Cosmology in which the catalogue's luminosities were computed. ``LX`` is
        rescaled to the relation's fiducial cosmology by (D_L,rel / D_L,input)^2.
        Default: the relation's fiducial cosmology (no rescaling). Masses are always
        expressed in the relation's fiducial cosmology (``self.cosmology``).
    evolution_cosmology : {"relation", "input"}
        Where E(z) and D_L(z) of the relation are evaluated: in the calibration's
        fiducial cosmology (default, as calibrated) or in ``cosmology``.
    eddington : bool
        Multiply the likelihood by a halo mass function (colossus, Tinker08 M500c,
        relation's fiducial cosmology): population-averaged (Eddington-corrected)
        masses instead of the plain inversion. See :ref:`relations`.
    method : {"auto", "analytic", "grid"}
        Inversion method (see `ScalingRelation.invert`).
    use_errors : bool
        Use the observable's error column when present (default True).
    prior : callable, optional
        Custom prior ``prior(ln_mass, z) -> ln density per ln M`` (instead of the
        mass function of ``eddington=True``); implies the numerical posterior.
    """

    def __init__(self, relation="lx-chiu22", name=None, cosmology=None,
                 evolution_cosmology="relation", eddington=False, method="auto",
                 use_errors=True, prior=None):
        if isinstance(relation, ScalingRelation):
            self.relation = relation
        else:
            self.relation = load_relation(relation)
        rel = self.relation
        self.name = name or rel.name
        self.inputs = ("z", rel.observable)
        self.optional_inputs = ((rel.observable_error,)
                                if use_errors and rel.observable_error else ())
        self.reference = rel.reference
        self.description = str(rel.meta.get("description", "")).strip()
        self.version = f"{rel.meta.get('version', '1')}"
        if evolution_cosmology not in _COSMO_CHOICES:
            raise RelationError(f"evolution_cosmology must be one of {_COSMO_CHOICES}, "
                                f"not {evolution_cosmology!r}")
        self.input_cosmology = cosmology or rel.fiducial_cosmology
        self.evolution_cosmology = evolution_cosmology
        self.cosmology = rel.fiducial_cosmology
        self.method = method
        self.use_errors = use_errors
        self.eddington = bool(eddington)
        self._prior = prior
        if self.eddington and prior is None:
            from .eddington import MassFunctionPrior

            extra = rel.meta.get("cosmology_extra", {})
            self._prior = MassFunctionPrior(rel.fiducial_cosmology,
                                            sigma8=extra.get("sigma8", 0.8),
                                            ns=extra.get("ns", 0.95))

    def _estimate(self, view):
        rel = self.relation
        z = view["z"].value
        obs = view[rel.observable]
        err = view.get(rel.observable_error) if self.optional_inputs else None
        if isinstance(rel, LuminosityMassRelation) or rel.observable == "LX":
            obs = _rescale_lx(obs, z, self.input_cosmology, rel.fiducial_cosmology)
            if err is not None:
                err = _rescale_lx(err, z, self.input_cosmology, rel.fiducial_cosmology)
        cosmo = self.input_cosmology if self.evolution_cosmology == "input" else None
        inv = rel.invert(obs, z, observable_err=err, cosmology=cosmo, method=self.method,
                         prior=self._prior)
        mu, sig = inv.log10_mass, inv.log10_mass_err
        ok = np.array(inv.ok, dtype=bool)
        reason = np.array(inv.reason, dtype=object)
        # Extreme but accepted inputs (e.g. z = 1e-300, where D_L -> 0) can make the
        # inversion overflow: mask those rows alone rather than fail the whole catalogue.
        with np.errstate(invalid="ignore"):
            broken = ok & ~(np.isfinite(mu) & np.isfinite(sig) & (sig > 0))
        for i in np.flatnonzero(broken):
            reason[i] = (f"inversion of {rel.name} not finite at z={z[i]:g}, "
                         f"{rel.observable}={obs[i].value:g} {obs.unit}")
        ok &= ~broken
        return mu, sig, ok, reason.astype(str)

    def parameters(self):
        params = self.relation.parameters()
        params.update(
            method=self.method,
            eddington=self.eddington,
            prior=("flat in ln M" if self._prior is None
                   else getattr(self._prior, "description", repr(self._prior))),
            evolution_cosmology=self.evolution_cosmology,
            input_cosmology=str(self.input_cosmology),
            use_errors=self.use_errors,
        )
        return params


def _rescale_lx(lx, z, from_cosmo, to_cosmo):
    if from_cosmo is to_cosmo:
        return lx
    from .lx import luminosity_to_relation_cosmology

    return luminosity_to_relation_cosmology(lx, z, from_cosmo, to_cosmo)


def make_estimator(name, **options):
    """Factory used by the registry: the estimator for shipped relation ``name``.

    ``relation=`` (a YAML path) overrides the parameter set while keeping the name.
    """
    relation = options.pop("relation", name)
    return ScalingRelationEstimator(relation=relation, name=name, **options)

