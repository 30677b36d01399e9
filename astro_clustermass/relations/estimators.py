"""Mass estimators built on scaling relations (``lx-chiu22``, ``cr-erass1``, ...).

Each shipped YAML parameter set becomes an estimator of the same name. The estimator
reads ``z`` and the relation's observable (``LX`` or ``count_rate``) and, when present,
its error column, and inverts the relation (see
`~astro_clustermass.relations.base.ScalingRelation.invert`).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
from astropy import units as u
from astropy.table import Table

from ..catalog import CANONICAL_COLUMNS, ColumnUnitError, find_column
from ..core import MassEstimator
from ..utils.exceptions import InputDataWarning
from .base import RelationError, ScalingRelation, load_relation
from .lx import luminosity_to_relation_cosmology

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

    def estimate(self, table, column_map=None):
        """Estimate M500c for every row (see `MassEstimator.estimate`).

        Before anything is computed, the observable's column is checked against the
        relation's band (``band_keV`` of the parameter set) where the catalogue records
        its band (`astro_clustermass.esass.column_band`): a count rate of another eSASS
        band is refused with `~astro_clustermass.catalog.ColumnUnitError`, unless the
        caller chose that column (``column_map``, or ``rate_band`` of
        `~astro_clustermass.esass.read_catalog`), which is used with a warning. The
        provenance gets ``columns_read``: the catalogue columns read, with unit and band.
        """
        if not isinstance(table, Table):  # the base class says what it expects
            return super().estimate(table, column_map=column_map)
        read = self.columns_read(table, column_map)
        result = super().estimate(table, column_map=column_map)
        return dataclasses.replace(result, meta={**result.meta, "columns_read": read})

    def columns_read(self, table, column_map=None):
        """The catalogue columns this estimator reads: canonical name, column, unit, band.

        Raises `~astro_clustermass.catalog.ColumnUnitError` for an observable in a band
        other than the relation's that the caller did not ask for.
        """
        from ..esass import column_band

        rel = self.relation
        out, obs_col, obs_band, obs_asked = [], None, None, False
        for canonical in (*self.inputs, *self.optional_inputs):
            colname = find_column(table, canonical, column_map)
            if colname is None:
                continue
            unit = getattr(table[colname], "unit", None)
            canonical_unit = CANONICAL_COLUMNS[canonical].unit
            entry = {"canonical": canonical, "column": colname,
                     "unit": (str(unit) if unit is not None else
                              "none (dimensionless)" if canonical_unit == u.dimensionless_unscaled
                              else f"none (taken as {canonical_unit})")}
            asked = bool(column_map) and canonical in column_map
            if canonical == rel.observable:
                entry["band"] = self._band_of(table, colname, canonical, asked)
                obs_col, obs_band, obs_asked = colname, column_band(table, colname), asked
            elif canonical == rel.observable_error:
                band = column_band(table, colname)
                if band is not None and obs_band is not None and band != obs_band:
                    raise ColumnUnitError(
                        f"{rel.name}: {canonical} column {colname!r} ({band[0]:g}-{band[1]:g} "
                        f"keV) is not of the band of {rel.observable} column {obs_col!r} "
                        f"({obs_band[0]:g}-{obs_band[1]:g} keV); name both with column_map")
                # the error of the band the caller chose for the observable is chosen too
                entry["band"] = self._band_of(table, colname, canonical, asked or obs_asked)
            out.append(entry)
        return out

    def _band_of(self, table, colname, canonical, asked):
        from ..esass import BAND_EDGE_TOLERANCE, column_band

        rel = self.relation
        wanted = rel.meta.get("band_keV")
        text = rel.meta.get("band", "the relation's band")
        if rel.observable == "count_rate" and "ID_BAND" in {c.upper() for c in table.colnames}:
            raise ColumnUnitError(
                f"{rel.name}: the catalogue has an ID_BAND column: an eSASS ermldet list with "
                f"one row per source and band, whose {colname!r} mixes bands; read it with "
                "astro_clustermass.esass.read_catalog(path, rate_band=...)")
        band = column_band(table, colname)
        if band is None:
            return f"not recorded in the catalogue; taken to be {text}"
        label = f"{band[0]:g}-{band[1]:g} keV"
        if wanted is None or np.allclose(band, wanted, atol=BAND_EDGE_TOLERANCE):
            return label
        meta = getattr(table[colname].info, "meta", None) or {}
        problem = (f"column {colname!r} ({canonical}) holds {label} rates, but {rel.name} is "
                   f"calibrated for {text}")
        if asked or meta.get("rate_band_requested"):
            warnings.warn(f"{rel.name}: {problem}; used because it was asked for (masses "
                          "biased)", InputDataWarning, stacklevel=2)
            return f"{label} (asked for; the relation's band is {text})"
        if rel.observable != "count_rate":
            raise ColumnUnitError(f"{problem}; name it with column_map={{{canonical!r}: ...}} "
                                  "to use it anyway")
        bands = table.meta.get("bands")
        listed = ", ".join(f"{b}: {e[0]:g}-{e[1]:g} keV" for b, e in bands.items()) \
            if isinstance(bands, dict) else ""
        raise ColumnUnitError(
            f"{problem}. Read the eSASS file with astro_clustermass.esass.read_catalog(path, "
            f"rate_band=...) naming the bands that make 0.2-2.3 keV"
            + (f" (this file's bands: {listed})" if listed else "")
            + f", or name a 0.2-2.3 keV column with column_map={{{canonical!r}: ...}}")

    def _estimate(self, view):
        rel = self.relation
        z = view["z"].value
        obs = view[rel.observable]
        err = view.get(rel.observable_error) if self.optional_inputs else None
        if rel.observable == "LX":
            obs = _rescale_lx(obs, z, self.input_cosmology, rel.fiducial_cosmology)
            if err is not None:
                err = _rescale_lx(err, z, self.input_cosmology, rel.fiducial_cosmology)
        cosmo = self.input_cosmology if self.evolution_cosmology == "input" else None
        inv = rel.invert(obs, z, observable_err=err, cosmology=cosmo, method=self.method,
                         prior=self._prior)
        mu, sig = inv.log10_mass, inv.log10_mass_err
        ok = np.array(inv.ok, dtype=bool)
        reason = inv.reason
        # Extreme but accepted inputs (e.g. z = 1e-300, where D_L -> 0) can make the
        # inversion overflow: mask those rows alone rather than fail the whole catalogue.
        with np.errstate(invalid="ignore"):
            broken = ok & ~(np.isfinite(mu) & np.isfinite(sig) & (sig > 0))
        if broken.any():  # (the reasons are copied only then: 1e6 rows are 300 MB)
            reason = np.array(reason, dtype=object)
            for i in np.flatnonzero(broken):
                reason[i] = (f"inversion of {rel.name} not finite at z={z[i]:g}, "
                             f"{rel.observable}={obs[i].value:g} {obs.unit}")
            reason = reason.astype(str)
        ok &= ~broken
        return mu, sig, ok, reason

    def parameters(self):
        params = self.relation.parameters()
        obs = self.relation.observable
        params.update(
            method=self.method,
            eddington=self.eddington,
            prior=("flat in ln M" if self._prior is None
                   else getattr(self._prior, "description", repr(self._prior))),
            evolution_cosmology=self.evolution_cosmology,
            input_cosmology=str(self.input_cosmology),
            use_errors=self.use_errors,
            sigma=(f"sqrt(scatter_ln^2 + (error / {obs})^2) / b(z) / ln 10 dex: the intrinsic "
                   f"scatter of ln {obs} at fixed (M, z) (scatter_ln = {params['scatter_ln']:g}, "
                   f"checked against the publication: {params['scatter_verified']}) plus the "
                   f"measurement error of {obs} from {self.relation.observable_error} "
                   f"({'when present' if self.optional_inputs else 'not used'}); without the "
                   "uncertainties of the relation's parameters and without differences of "
                   "sample, aperture or band from the calibration"),
        )
        return params


def _rescale_lx(lx, z, from_cosmo, to_cosmo):
    if from_cosmo is to_cosmo:
        return lx
    return luminosity_to_relation_cosmology(lx, z, from_cosmo, to_cosmo)


def make_estimator(name, **options):
    """Factory used by the registry: the estimator for shipped relation ``name``.

    ``relation=`` (a YAML path) overrides the parameter set while keeping the name.
    """
    relation = options.pop("relation", name)
    return ScalingRelationEstimator(relation=relation, name=name, **options)

