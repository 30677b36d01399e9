"""`ScalingRelation`: observable - mass - redshift relations and their inversion.

A relation of the "ln-power-law" form used by the eFEDS and eRASS1 weak-lensing
calibrations,

.. math::

    \\ln\\frac{O}{O_n} = \\ln A + \\left[B + F\\ln\\frac{1+z}{1+z_p}\\right]\\ln\\frac{M}{M_p}
    + C_E\\ln\\frac{E(z)}{E(z_p)} + C_D\\ln\\frac{D_L(z)}{D_L(z_p)}
    + G\\ln\\frac{1+z}{1+z_p},

with log-normal intrinsic scatter :math:`\\sigma_{\\ln O}` of the observable at fixed mass
and redshift. Parameter sets live in YAML files (see :ref:`relations`), so a survey team
can add its own calibration without code.

Masses are h-free solar masses, M500c (critical overdensity at the cluster redshift);
any little-h in a published calibration is converted explicitly when the YAML is read
(``h_exponent`` fields).
"""

from __future__ import annotations

import copy
import os
import warnings
from dataclasses import dataclass

import numpy as np
from astropy import units as u
from astropy.cosmology import FlatLambdaCDM, LambdaCDM

from ..utils.data import package_data
from ..utils.exceptions import OutOfRangeWarning

__all__ = ["ScalingRelation", "Inversion", "RelationError", "load_relation",
           "relation_path", "builtin_relation_names", "RELATION_DIR"]


#: Directory of the shipped parameter sets.
RELATION_DIR = package_data("relations")

_LN10 = np.log(10.0)


class RelationError(ValueError):
    """A relation's parameter set is malformed or a value cannot be used."""


def builtin_relation_names():
    """Names of the shipped parameter sets (``data/relations/*.yaml``)."""
    return sorted(f[:-5] for f in os.listdir(RELATION_DIR) if f.endswith(".yaml"))


def relation_path(name_or_path):
    """Path of a parameter set given a shipped name (``"lx-chiu22"``) or a file path."""
    if os.path.exists(name_or_path):
        return os.fspath(name_or_path)
    candidate = os.path.join(RELATION_DIR, f"{name_or_path}.yaml")
    if os.path.exists(candidate):
        return candidate
    raise RelationError(
        f"no relation file {name_or_path!r} and no shipped relation of that name "
        f"(shipped: {', '.join(builtin_relation_names())})"
    )


def _read_yaml(path):
    import yaml

    with open(path) as fh:
        try:
            data = yaml.safe_load(fh)
        except yaml.YAMLError as exc:
            raise RelationError(f"relation file {path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise RelationError(f"relation file {path}: expected a mapping at top level")
    return data


def load_relation(name_or_path, cls=None):
    """Read a parameter set (shipped name or YAML path) into a `ScalingRelation`.

    Parameters
    ----------
    name_or_path : str
        Name of a shipped parameter set (``"lx-chiu22"``, ``"cr-erass1"``) or a YAML path.
    cls : type, optional
        `ScalingRelation` subclass to build (default `ScalingRelation`).
    """
    path = relation_path(name_or_path)
    return (cls or ScalingRelation).from_dict(_read_yaml(path), source=path)


@dataclass(frozen=True)
class Inversion:
    """Mass inferred from an observable: a Gaussian in log10(M500c / Msun).

    Attributes
    ----------
    log10_mass, log10_mass_err : array
        Mean and standard deviation [dex]; NaN where ``ok`` is False.
    ok : array of bool
        Rows with an estimate.
    reason : array of str
        Why a row has no estimate, or a warning; '' if clean.
    """

    log10_mass: np.ndarray
    log10_mass_err: np.ndarray
    ok: np.ndarray
    reason: np.ndarray


def _number(entry, key, path):
    if isinstance(entry, dict):
        if "value" not in entry:
            raise RelationError(f"relation {path}: {key!r} needs a 'value'")
        entry = entry["value"]
    try:
        return float(entry)
    except (TypeError, ValueError):
        raise RelationError(f"relation {path}: {key!r} = {entry!r} is not a number") from None


def _cosmology_from(spec, path):
    spec = dict(spec or {})
    cls = spec.pop("class", "FlatLambdaCDM")
    extra = {k: spec.pop(k) for k in ("sigma8", "ns") if k in spec}
    try:
        if cls == "FlatLambdaCDM":
            cosmo = FlatLambdaCDM(H0=spec.pop("H0"), Om0=spec.pop("Om0"),
                                  Ob0=spec.pop("Ob0", None), Tcmb0=spec.pop("Tcmb0", 0.0),
                                  name=spec.pop("name", "relation fiducial"))
        elif cls == "LambdaCDM":
            cosmo = LambdaCDM(H0=spec.pop("H0"), Om0=spec.pop("Om0"), Ode0=spec.pop("Ode0"),
                              Ob0=spec.pop("Ob0", None), Tcmb0=spec.pop("Tcmb0", 0.0),
                              name=spec.pop("name", "relation fiducial"))
        else:
            raise RelationError(f"relation {path}: fiducial_cosmology class {cls!r} not "
                                "supported (FlatLambdaCDM, LambdaCDM)")
    except KeyError as exc:
        raise RelationError(f"relation {path}: fiducial_cosmology lacks {exc}") from None
    if spec:
        raise RelationError(f"relation {path}: unknown fiducial_cosmology keys {sorted(spec)}")
    return cosmo, extra


class ScalingRelation:
    """An observable - M500c - z relation with log-normal intrinsic scatter.

    Build it from a parameter set with `ScalingRelation.from_dict` or `load_relation`;
    the constructor takes values already converted to h-free units.

    Parameters
    ----------
    name : str
    observable : str
        Canonical catalogue column of the observable (``"LX"``, ``"count_rate"``).
    normalization : `~astropy.units.Quantity`
        :math:`O_n`, h-free (e.g. erg/s).
    mass_pivot : `~astropy.units.Quantity`
        :math:`M_p`, h-free Msun.
    redshift_pivot : float
    A, B, F, G, C_E, C_D : float
        Parameters of the form above.
    scatter_ln : float
        Intrinsic scatter of ln(O) at fixed mass and redshift.
    fiducial_cosmology : `~astropy.cosmology.Cosmology`
        Cosmology of the calibration; E(z) and D_L(z) are evaluated in it by default.
    z_range, mass_range : tuple of float
        Calibrated ranges (mass in h-free Msun); outside them estimates carry a warning.
    meta : dict
        Everything else from the parameter set (reference, DOI, notes, raw values).
    """

    def __init__(self, name, observable, normalization, mass_pivot, redshift_pivot,
                 A, B, F=0.0, G=0.0, C_E=0.0, C_D=0.0, scatter_ln=0.0,
                 fiducial_cosmology=None, z_range=(0.0, np.inf),
                 mass_range=(0.0, np.inf), observable_error=None, meta=None):
        self.name = name
        self.observable = observable
        self.observable_error = observable_error
        self.normalization = u.Quantity(normalization)
        self.mass_pivot = u.Quantity(mass_pivot).to(u.Msun)
        self.redshift_pivot = float(redshift_pivot)
        self.A, self.B, self.F, self.G = float(A), float(B), float(F), float(G)
        self.C_E, self.C_D = float(C_E), float(C_D)
        if not np.isfinite(scatter_ln) or scatter_ln < 0:
            raise RelationError(f"relation {name}: scatter must be >= 0, got {scatter_ln}")
        if self.A <= 0:
            raise RelationError(f"relation {name}: normalisation A must be > 0, got {A}")
        self.scatter_ln = float(scatter_ln)
        self.fiducial_cosmology = fiducial_cosmology or FlatLambdaCDM(70, 0.3, Tcmb0=0.0)
        self.z_range = tuple(float(v) for v in z_range)
        self.mass_range = tuple(float(v) for v in mass_range)
        self.meta = dict(meta or {})

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, data, source="<dict>"):
        """Build from a parsed parameter set (the YAML schema of :ref:`relations`)."""
        data = copy.deepcopy(data)
        path = source
        form = data.get("form", "ln-power-law")
        if form != "ln-power-law":
            raise RelationError(f"relation {path}: form {form!r} not supported "
                                "(only 'ln-power-law')")
        for key in ("name", "observable", "normalization", "mass_pivot", "redshift_pivot",
                    "parameters"):
            if key not in data:
                raise RelationError(f"relation {path}: missing required key {key!r}")
        h = float(data.get("little_h", 1.0))
        if not 0 < h < 2:
            raise RelationError(f"relation {path}: little_h={h} is not a Hubble parameter/100")

        def hfree(key):
            entry = data[key]
            if not isinstance(entry, dict) or "unit" not in entry:
                raise RelationError(f"relation {path}: {key!r} needs 'value' and 'unit'")
            value = _number(entry, key, path)
            exponent = float(entry.get("h_exponent", 0.0))
            try:
                unit = u.Unit(entry["unit"])
            except ValueError:
                raise RelationError(f"relation {path}: {key!r} has unknown unit "
                                    f"{entry['unit']!r}") from None
            return value * h ** exponent * unit

        params = data["parameters"]
        known = {"A", "B", "F", "G", "C_E", "C_D"}
        unknown = set(params) - known
        if unknown:
            raise RelationError(f"relation {path}: unknown parameter(s) {sorted(unknown)}; "
                                f"the ln-power-law form has {sorted(known)}")
        for key in ("A", "B"):
            if key not in params:
                raise RelationError(f"relation {path}: parameter {key!r} is required")
        values = {k: _number(v, k, path) for k, v in params.items()}
        scatter = data.get("scatter", 0.0)
        scatter_value = _number(scatter, "scatter", path)
        base = scatter.get("log_base", "e") if isinstance(scatter, dict) else "e"
        if str(base) in ("10", "dex"):
            scatter_value *= _LN10
        elif str(base) != "e":
            raise RelationError(f"relation {path}: scatter log_base must be 'e' or '10'")
        cosmo, cosmo_extra = _cosmology_from(data.get("fiducial_cosmology"), path)
        validity = data.get("validity", {}) or {}
        z_range = tuple(validity.get("z", (0.0, np.inf)))
        m_exp = float(validity.get("mass_h_exponent", 0.0))
        mass_range = tuple(float(m) * h ** m_exp for m in validity.get("mass", (0.0, np.inf)))
        meta = {k: v for k, v in data.items()
                if k not in ("parameters", "normalization", "mass_pivot")}
        meta.update(source=os.fspath(source), raw_parameters=params,
                    raw_normalization=data["normalization"], raw_mass_pivot=data["mass_pivot"],
                    cosmology_extra=cosmo_extra, little_h=h)
        return cls(name=data["name"], observable=data["observable"],
                   observable_error=data.get("observable_error"),
                   normalization=hfree("normalization"), mass_pivot=hfree("mass_pivot"),
                   redshift_pivot=_number(data["redshift_pivot"], "redshift_pivot", path),
                   scatter_ln=scatter_value, fiducial_cosmology=cosmo, z_range=z_range,
                   mass_range=mass_range, meta=meta, **values)

    def with_parameters(self, **changes):
        """A copy with some attributes replaced (e.g. ``scatter_ln=0.2``)."""
        new = copy.copy(self)
        for key, value in changes.items():
            if not hasattr(new, key):
                raise RelationError(f"relation has no attribute {key!r}")
            setattr(new, key, value)
        return new

    # ------------------------------------------------------------------ evaluation
    @property
    def reference(self):
        ref = self.meta.get("reference", "")
        doi = self.meta.get("doi")
        return f"{ref}, doi:{doi}" if doi else ref

    def _zterms(self, z, cosmology=None):
        """(intercept a(z), slope b(z)) with ln(O/O_n) = a + b ln(M/M_p)."""
        cosmo = cosmology or self.fiducial_cosmology
        z = np.asarray(z, dtype=float)
        zp = self.redshift_pivot
        lz = np.log((1.0 + z) / (1.0 + zp))
        a = np.log(self.A) + self.G * lz
        if self.C_E:
            a = a + self.C_E * np.log(cosmo.efunc(z) / cosmo.efunc(zp))
        if self.C_D:
            dl = cosmo.luminosity_distance(z).to_value(u.Mpc)
            dlp = cosmo.luminosity_distance(zp).to_value(u.Mpc)
            with np.errstate(divide="ignore"):
                a = a + self.C_D * np.log(dl / dlp)
        b = self.B + self.F * lz
        return a, b

    def ln_mean_observable(self, mass, z, cosmology=None):
        """Mean of ln(O / O_n) at mass ``mass`` and redshift ``z`` (the scatter's centre).

        Parameters
        ----------
        mass : `~astropy.units.Quantity` or array
            M500c (h-free Msun if no unit).
        z : float or array
        cosmology : `~astropy.cosmology.Cosmology`, optional
            Where to evaluate E(z) and D_L(z); default the relation's fiducial cosmology.
        """
        m = u.Quantity(mass, u.Msun).to_value(u.Msun)
        a, b = self._zterms(z, cosmology)
        return a + b * np.log(m / self.mass_pivot.to_value(u.Msun))

    def mean_observable(self, mass, z, cosmology=None):
        """Median observable (exp of the mean of ln O) as a Quantity."""
        return np.exp(self.ln_mean_observable(mass, z, cosmology)) * self.normalization

    def sample_observable(self, mass, z, rng=None, cosmology=None):
        """Draw observables with the intrinsic log-normal scatter."""
        rng = np.random.default_rng(rng)
        ln_mean = self.ln_mean_observable(mass, z, cosmology)
        draw = ln_mean + self.scatter_ln * rng.standard_normal(np.shape(ln_mean))
        return np.exp(draw) * self.normalization

    # ------------------------------------------------------------------ inversion
    def invert(self, observable, z, observable_err=None, cosmology=None, method="auto",
               prior=None, grid_step=0.01, grid_range=(1e11, 1e17)):
        """Mass from observable: mean and sigma of log10(M500c / Msun).

        The sigma combines the intrinsic scatter and the measurement error.

        Parameters
        ----------
        observable : `~astropy.units.Quantity` or array
            Observable in units convertible to ``normalization`` (plain numbers are
            taken to be in those units).
        z : array
        observable_err : Quantity or array, optional
            1-sigma measurement error (Gaussian in the observable); NaN or absent
            means none.
        cosmology : `~astropy.cosmology.Cosmology`, optional
            Cosmology for E(z) and D_L(z); default the relation's fiducial one.
        method : {"auto", "analytic", "grid"}
            ``analytic``: the measurement error is treated as log-normal
            (sigma_ln = err/O) and the relation is inverted exactly in ln M, with the
            redshift-dependent slope b(z): ln(M/M_p) = (ln(O/O_n) - a(z)) / b(z) and
            sigma_lnM = sqrt(sigma_int^2 + sigma_ln,meas^2) / b(z). This is a flat
            prior in ln M; its frequentist coverage is exact for log-normal errors.
            ``grid``: the posterior of ln M on a grid with the measurement error
            Gaussian in O and the intrinsic scatter log-normal (numerical convolution),
            times ``prior``; the estimate is the posterior median and half the 16-84%
            interval. Meant for use with a proper prior: with a flat prior in ln M and
            S/N of a few, the likelihood does not vanish as M -> 0 and the result
            depends on ``grid_range`` (such rows are flagged).
            ``auto`` (default): ``analytic`` without a prior, ``grid`` with one.
        prior : callable, optional
            ``prior(ln_mass_grid[None, :], z[:, None]) -> ln prior density per ln M``,
            e.g. a halo mass function (Eddington bias correction, see
            `astro_clustermass.relations.eddington`).
        grid_step : float
            Step of the ln M grid.
        grid_range : tuple of float
            Mass range of the grid [Msun].

        Returns
        -------
        `Inversion`
        """
        obs = self._as_values(observable, "observable")
        z = np.asarray(z, dtype=float)
        n = obs.shape[0]
        err = (np.full(n, np.nan) if observable_err is None
               else self._as_values(observable_err, "observable_err"))
        if err.shape != obs.shape or z.shape != obs.shape:
            raise RelationError("observable, observable_err and z must have the same length")
        reason = np.full(n, "", dtype=object)
        ok = np.isfinite(obs) & (obs > 0) & np.isfinite(z) & (z >= 0)
        reason[~(np.isfinite(obs) & (obs > 0))] = f"{self.observable} missing or <= 0"
        reason[~(np.isfinite(z) & (z >= 0))] = "redshift missing or < 0"
        a, b = self._zterms(np.where(np.isfinite(z) & (z >= 0), z, 0.0), cosmology)
        bad_slope = ok & ~(b > 0)
        reason[bad_slope] = "relation has non-positive mass slope at this redshift"
        ok &= ~bad_slope
        has_err = np.isfinite(err) & (err > 0)
        err = np.where(has_err, err, 0.0)
        if method not in ("auto", "analytic", "grid"):
            raise RelationError(f"method must be 'auto', 'analytic' or 'grid', not {method!r}")
        if method == "grid" or prior is not None:
            use_grid = ok & (has_err | (prior is not None))
        else:  # "analytic", or "auto" without a prior
            use_grid = np.zeros(n, bool)
        mu = np.full(n, np.nan)
        sig = np.full(n, np.nan)
        ln_mp = np.log(self.mass_pivot.to_value(u.Msun))
        # Analytic inversion.
        ana = ok & ~use_grid
        if ana.any():
            sig_meas = np.where(has_err[ana], err[ana] / obs[ana], 0.0)
            ln_m = ln_mp + (np.log(obs[ana]) - a[ana]) / b[ana]
            mu[ana] = ln_m / _LN10
            sig[ana] = np.hypot(self.scatter_ln, sig_meas) / b[ana] / _LN10
        if use_grid.any():
            idx = np.flatnonzero(use_grid)
            gm, gs, edge = self._grid_posterior(obs[idx], err[idx], a[idx], b[idx], z[idx],
                                                ln_mp, prior, grid_step, grid_range)
            mu[idx], sig[idx] = gm, gs
            for i in idx[edge]:
                reason[i] = "posterior reaches the edge of the mass grid or prior (low S/N)"
        # Degenerate: no scatter and no error -> sigma 0; keep interface (sigma > 0).
        zero = ok & ~(sig > 0)
        if zero.any():
            reason[zero] = "zero uncertainty (no scatter, no error)"
            ok &= ~zero
        # Validity-range warnings (rows stay valid).
        zlo, zhi = self.z_range
        outz = ok & ((z < zlo) | (z > zhi))
        for i in np.flatnonzero(outz):
            reason[i] = _join(reason[i], f"outside calibrated z range {zlo:g}-{zhi:g}")
        mlo, mhi = self.mass_range
        with np.errstate(invalid="ignore", divide="ignore"):
            outm = ok & ((mu < np.log10(mlo)) | (mu > np.log10(mhi)))
        for i in np.flatnonzero(outm):
            reason[i] = _join(reason[i], f"mass outside calibrated range {mlo:.3g}-{mhi:.3g} Msun")
        n_out = int(outz.sum() + outm.sum())
        if n_out:
            warnings.warn(f"{self.name}: {n_out} row(s) outside the calibrated range "
                          "(flagged in the _flag column, not dropped)", OutOfRangeWarning,
                          stacklevel=2)
        mu[~ok] = np.nan
        sig[~ok] = np.nan
        return Inversion(mu, sig, ok, reason.astype(str))

    def _as_values(self, q, label):
        if isinstance(q, u.Quantity):
            try:
                return np.atleast_1d(q.to_value(self.normalization.unit)).astype(float) / \
                    self.normalization.value
            except u.UnitConversionError:
                raise RelationError(f"{label} has unit {q.unit}, not convertible to "
                                    f"{self.normalization.unit}") from None
        return np.atleast_1d(np.asarray(q, dtype=float)) / self.normalization.value

    def _grid_posterior(self, obs, err, a, b, z, ln_mp, prior, step, grid_range,
                        summary="quantiles"):
        """Posterior mean/std of log10 M on a ln M grid, row by row (vectorised).

        Likelihood: L(M) = int N(O_obs | O, err) LogN(O | a + b ln(M/M_p), sigma_int) dO.
        On the grid, y_j = a + b (ln M_j - ln M_p) is linear in ln M, so the integral
        over ln O is a Gaussian smoothing of f_j = N(O_obs | e^{y_j}, err) along the grid
        with width sigma_int / (b * step) cells, done with an FFT per row.
        """
        lnm = np.arange(np.log(grid_range[0]), np.log(grid_range[1]) + step / 2, step)
        ng = lnm.size
        nfft = 1 << int(np.ceil(np.log2(2 * ng)))
        freq = np.fft.rfftfreq(nfft)
        mean = np.empty(obs.size)
        std = np.empty(obs.size)
        edge = np.zeros(obs.size, bool)
        chunk = max(1, 2_000_000 // ng)
        from tqdm import tqdm

        starts = range(0, obs.size, chunk)
        for start in tqdm(starts, desc=f"{self.name} posterior", unit="chunk",
                          disable=obs.size < 20_000, leave=False):
            sl = slice(start, start + chunk)
            y = a[sl, None] + b[sl, None] * (lnm[None, :] - ln_mp)
            e = err[sl, None]
            noerr = e[:, 0] <= 0
            with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
                resid = (obs[sl, None] - np.exp(np.minimum(y, 700.0))) / e
                # Rows without a measurement error: log-normal intrinsic scatter only.
                resid_ln = (np.log(obs[sl, None]) - y) / max(self.scatter_ln, 1e-300)
            resid = np.where(noerr[:, None], resid_ln, resid)
            loglike = -0.5 * resid ** 2
            like = np.exp(loglike - loglike.max(axis=1, keepdims=True))
            if self.scatter_ln > 0:
                width = np.where(noerr, 0.0, self.scatter_ln / (b[sl] * step))
                like = _smooth(like, width, nfft, freq, ng)
            f = like
            if prior is not None:
                lp = prior(lnm[None, :], z[sl, None])
                f = like * np.exp(lp - lp.max(axis=1, keepdims=True))
            f = np.clip(f, 0.0, None)
            w = f / f.sum(axis=1, keepdims=True)
            cdf = np.cumsum(w, axis=1)
            if summary == "moments":
                m1 = (w * lnm[None, :]).sum(axis=1)
                m2 = (w * (lnm[None, :] - m1[:, None]) ** 2).sum(axis=1)
                mean[sl] = m1 / _LN10
                std[sl] = np.sqrt(m2) / _LN10
            else:
                edges = lnm + step / 2  # the CDF at cell i is reached at its upper edge
                q16, q50, q84 = (_quantile_rows(cdf, edges, q)
                                 for q in (0.158655, 0.5, 0.841345))
                mean[sl] = q50 / _LN10
                std[sl] = 0.5 * (q84 - q16) / _LN10
            ncell = max(1, int(round(np.log(10 ** 0.5) / step)))
            # Probability within 0.5 dex of the lowest/highest mass with support (the
            # grid ends, or where a prior becomes zero).
            cells = np.arange(ng)[None, :]
            first = np.argmax(w > 0, axis=1)[:, None]
            last = ng - 1 - np.argmax(w[:, ::-1] > 0, axis=1)[:, None]
            low = ((cells >= first) & (cells < first + ncell) & (first > 0)) | \
                ((cells < ncell) & (first == 0))
            high = cells > last - ncell
            edge[sl] = ((w * low).sum(axis=1) > 0.01) | ((w * high).sum(axis=1) > 0.01)
        return mean, std, edge

    # ------------------------------------------------------------------ provenance
    def parameters(self):
        """Plain-dict description (h-free values and the raw published ones)."""
        return {
            "name": self.name,
            "observable": self.observable,
            "form": "ln-power-law",
            "A": self.A, "B": self.B, "F": self.F, "G": self.G,
            "C_E": self.C_E, "C_D": self.C_D,
            "normalization": f"{self.normalization.value:.6g} {self.normalization.unit}",
            "mass_pivot_Msun": float(self.mass_pivot.to_value(u.Msun)),
            "redshift_pivot": self.redshift_pivot,
            "scatter_ln": self.scatter_ln,
            "scatter_verified": self._scatter_entry().get("verified"),
            "scatter_note": " ".join(str(self._scatter_entry().get("note", "")).split()),
            "band": self.meta.get("band", ""),
            "little_h": self.meta.get("little_h"),
            "z_range": list(self.z_range),
            "mass_range_Msun": list(self.mass_range),
            "reference": self.meta.get("reference", ""),
            "doi": self.meta.get("doi", ""),
            "source": os.path.basename(self.meta.get("source", "")),
        }

    def _scatter_entry(self):
        entry = self.meta.get("scatter", {})
        return entry if isinstance(entry, dict) else {}

    def __repr__(self):
        return (f"<ScalingRelation {self.name}: ln({self.observable}/"
                f"{self.normalization:.4g}) = ln {self.A} + [{self.B} + {self.F} ln((1+z)/"
                f"{1 + self.redshift_pivot:g})] ln(M/{self.mass_pivot:.4g}) + ..., "
                f"sigma_ln={self.scatter_ln}>")


def _quantile_rows(cdf, grid, q):
    """Per-row quantile ``q`` of a discrete CDF on ``grid`` (linear interpolation)."""
    idx = np.clip((cdf < q).sum(axis=1), 1, grid.size - 1)
    rows = np.arange(cdf.shape[0])
    c0, c1 = cdf[rows, idx - 1], cdf[rows, idx]
    t = np.clip((q - c0) / np.where(c1 > c0, c1 - c0, 1.0), 0.0, 1.0)
    return grid[idx - 1] + t * (grid[idx] - grid[idx - 1])


def _smooth(f, width, nfft, freq, ng):
    """Gaussian smoothing of each row of ``f`` with its own width (grid cells)."""
    spec = np.fft.rfft(f, n=nfft, axis=1)
    transfer = np.exp(-2.0 * (np.pi * freq[None, :] * width[:, None]) ** 2)
    return np.fft.irfft(spec * transfer, n=nfft, axis=1)[:, :ng]


def _join(a, b):
    return f"{a}; {b}" if a else b
