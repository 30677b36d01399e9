"""The estimator interface: `MassEstimator` and its result, `MassEstimate`.

An estimator turns a cluster catalogue into a `MassEstimate`: a Gaussian in
log10(M500c / Msun) per row (mean and sigma in dex) plus a validity mask with a
reason for every row that has no estimate. `MassEstimator.estimate` is pure: it
never touches the input table. `MassEstimator.add_columns` writes the documented
columns onto a copy of the table (see :ref:`columns`).
"""

from __future__ import annotations

import abc
import datetime
from dataclasses import dataclass, field

import numpy as np
from astropy import units as u
from astropy.cosmology import Cosmology
from astropy.table import MaskedColumn, QTable, Table
from astropy.utils.masked import Masked
from scipy.special import ndtri

from . import __version__ as _package_version
from .catalog import CatalogView, column_names
from .utils.exceptions import EstimatorError

__all__ = ["MassEstimate", "MassEstimator", "EstimatorSpec", "EstimatorError",
           "write_mass_columns", "fits_safe_text"]

#: Standard-normal quantile of the 84th percentile, so that the 16/84th percentiles
#: of a Gaussian in log10 M are mean -/+ ONE_SIGMA_QUANTILE * sigma.
ONE_SIGMA_QUANTILE = float(ndtri(0.84))

#: Largest |log10 M| (plus one sigma) whose mass in Msun is a finite, non-zero float64.
_MAX_LOG10 = 300.0


@dataclass(frozen=True)
class MassEstimate:
    """Masses from one estimator for every row of a catalogue.

    The estimate is a Gaussian in ``log10(M500c / Msun)``.

    Parameters
    ----------
    estimator : str
        Name of the estimator that produced it.
    log10_mass : array of float, shape (N,)
        Mean of log10(M500c / Msun) [dex]; NaN where ``valid`` is False.
    log10_mass_err : array of float, shape (N,)
        Standard deviation of log10(M500c / Msun) [dex]; NaN where ``valid`` is False.
    valid : array of bool, shape (N,)
        Rows that have an estimate.
    reason : array of str, shape (N,)
        Why a row has no estimate, or a warning for a valid row (e.g. outside the
        calibrated range); ``''`` for clean rows.
    meta : dict
        Provenance: version, parameters, cosmology, date.
    extra : dict, optional
        More per-row values in dex, suffix -> array of shape (N,), written as
        ``log10M500c_NAME_<suffix>`` (e.g. ``err_stat`` and ``err_model``, the two parts
        of sigma of a calibration-marginalised CNN ensemble); NaN where ``valid`` is
        False. ``meta['extra_descriptions']`` may describe them.
    """

    estimator: str
    log10_mass: np.ndarray
    log10_mass_err: np.ndarray
    valid: np.ndarray
    reason: np.ndarray
    meta: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        # Private copies: the result is frozen without freezing the caller's arrays.
        mu = np.array(self.log10_mass, dtype=float)
        sig = np.array(self.log10_mass_err, dtype=float)
        valid = np.array(self.valid, dtype=bool)
        reason = _taken(self.reason)
        shapes = {a.shape for a in (mu, sig, valid, reason)}
        if len(shapes) != 1 or mu.ndim != 1:
            raise EstimatorError(
                f"estimator {self.estimator!r} returned arrays of inconsistent shapes "
                f"{[a.shape for a in (mu, sig, valid, reason)]}; expected four 1-D arrays "
                "of the catalogue length"
            )
        bad = valid & ~(np.isfinite(mu) & np.isfinite(sig) & (sig > 0))
        if bad.any():
            raise EstimatorError(
                f"estimator {self.estimator!r} marked {bad.sum()} row(s) valid with a "
                "non-finite mass or a non-positive/non-finite sigma (first row "
                f"{int(np.flatnonzero(bad)[0])})"
            )
        # A valid Gaussian in log10 M whose 16-84% range cannot be written in Msun
        # (overflow to inf or underflow to 0) is no usable estimate: mask the row with
        # a reason instead of writing M500c = inf.
        with np.errstate(invalid="ignore"):
            huge = valid & (np.abs(mu) + ONE_SIGMA_QUANTILE * sig > _MAX_LOG10)
        if huge.any():
            valid = valid & ~huge
            reason = reason.astype(object)
            for i in np.flatnonzero(huge):
                reason[i] = (f"no usable estimate: log10 M500c = {mu[i]:.4g} +- {sig[i]:.4g} "
                             "dex is outside the range representable in Msun")
            reason = reason.astype(str)
        mu = np.where(valid, mu, np.nan)
        sig = np.where(valid, sig, np.nan)
        extra = {}
        for key, value in dict(self.extra or {}).items():
            value = np.array(value, dtype=float)
            if not (isinstance(key, str) and key.isidentifier()) or value.shape != mu.shape:
                raise EstimatorError(
                    f"estimator {self.estimator!r}: extra column {key!r} must be a suffix "
                    f"(identifier) with one value per row, got shape {value.shape}")
            extra[key] = np.where(valid, value, np.nan)
            extra[key].setflags(write=False)
        object.__setattr__(self, "extra", extra)
        for name, value in (("log10_mass", mu), ("log10_mass_err", sig),
                            ("valid", valid), ("reason", reason)):
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    @classmethod
    def failed(cls, estimator, n, exc):
        """An estimate with every one of ``n`` rows masked because ``estimator`` failed.

        Parameters
        ----------
        estimator : str
            Name of the estimator.
        n : int
            Rows of the catalogue.
        exc : BaseException
            What went wrong; its type and text become every row's reason.
        """
        reason = f"estimator failed: {type(exc).__name__}: {exc}"[:300]
        return cls(estimator, np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, bool),
                   np.full(n, reason), meta={"name": estimator, "error": reason})

    def __len__(self):
        return len(self.valid)

    @property
    def mass(self):
        """Median M500c (Quantity, Msun); NaN where there is no estimate."""
        return (10.0 ** self.log10_mass) * u.Msun

    def percentile_mass(self, q):
        """The ``q``-th percentile (0-100) of M500c (Quantity, Msun)."""
        z = float(ndtri(q / 100.0))
        return (10.0 ** (self.log10_mass + z * self.log10_mass_err)) * u.Msun

    @property
    def mass_lo(self):
        """16th percentile of M500c (Quantity, Msun)."""
        return (10.0 ** (self.log10_mass - ONE_SIGMA_QUANTILE * self.log10_mass_err)) * u.Msun

    @property
    def mass_hi(self):
        """84th percentile of M500c (Quantity, Msun)."""
        return (10.0 ** (self.log10_mass + ONE_SIGMA_QUANTILE * self.log10_mass_err)) * u.Msun

    def to_distribution(self, n_samples=1000, seed=None):
        """Samples of M500c as an `astropy.uncertainty.Distribution` (Msun).

        Rows without an estimate hold NaN samples.

        Parameters
        ----------
        n_samples : int
            Samples per cluster.
        seed : int or `numpy.random.Generator`, optional
            Random seed, for reproducible samples.
        """
        from astropy.uncertainty import Distribution

        rng = np.random.default_rng(seed)
        draws = rng.standard_normal((len(self), int(n_samples)))
        log_m = self.log10_mass[:, None] + self.log10_mass_err[:, None] * draws
        return Distribution((10.0 ** log_m) * u.Msun)


@dataclass(frozen=True)
class EstimatorSpec:
    """What the registry knows of an estimator before loading it.

    Listing estimators reads only these specs, so it never imports heavy modules
    (torch): ``factory`` may be a ``"module:attribute"`` string resolved on `load`.

    Parameters
    ----------
    name : str
        Unique estimator name.
    factory : callable or str
        Returns a `MassEstimator` when called with keyword options; or the
        ``"module:attribute"`` path of such a callable (e.g. a class).
    inputs : tuple of str
        Canonical catalogue columns it needs (plus, in words, anything else).
    description : str
    version : str
    package : str
        Distribution that provides it (filled in by the registry).
    unavailable : str
        Why it cannot run with its default options (e.g. its weights are not shipped);
        empty if it can. Listed with the status ``unavailable``.
    """

    name: str
    factory: object
    inputs: tuple = ()
    description: str = ""
    version: str = ""
    package: str = ""
    unavailable: str = ""

    def resolve_factory(self):
        """The factory itself (imports its module if it was given as a string)."""
        factory = self.factory
        if isinstance(factory, str):
            import importlib

            from .guard import contained_call, plugin_import_timeout

            module, _, attr = factory.partition(":")
            try:
                obj = contained_call(lambda: importlib.import_module(module),
                                     f"importing module {module!r}", plugin_import_timeout())
                for part in attr.split(".") if attr else ():
                    obj = getattr(obj, part)
            except Exception as exc:
                raise EstimatorError(
                    f"estimator {self.name!r} from {self.package or 'unknown package'}: its "
                    f"factory {factory!r} cannot be loaded: {type(exc).__name__}: {exc}"
                ) from exc
            factory = obj
        return factory

    def accepts(self, option):
        """Whether the factory takes keyword ``option`` (e.g. ``"events"``).

        Imports the factory's module (for the CNN ensemble: torch).
        """
        import inspect

        try:
            params = inspect.signature(self.resolve_factory()).parameters
        except (TypeError, ValueError):
            return False
        return option in params

    def load(self, **options):
        """Import the factory if needed and build the estimator.

        The estimator's required ``inputs`` must be among the spec's: the spec is what
        `~astro_clustermass.add_mass_columns` reads to choose estimators without
        importing them. One that needs an undeclared column is built, with a
        `~astro_clustermass.utils.exceptions.PluginWarning`.
        """
        estimator = self.resolve_factory()(**options)
        if not isinstance(estimator, MassEstimator):
            raise EstimatorError(
                f"estimator {self.name!r} from {self.package or 'unknown package'}: factory "
                f"returned {type(estimator).__name__}, not a MassEstimator"
            )
        undeclared = [i for i in estimator.inputs if i not in self.inputs]
        if undeclared:
            import warnings

            from .utils.exceptions import PluginWarning

            warnings.warn(
                f"estimator {self.name!r} from {self.package or 'unknown package'} needs "
                f"{undeclared}, which its EstimatorSpec does not declare (inputs="
                f"{tuple(self.inputs)}): declare the same inputs in both, or return the "
                "MassEstimator subclass itself from the hook", PluginWarning, stacklevel=2)
        return estimator


class MassEstimator(abc.ABC):
    """Base class of every mass estimator, built in or from a plugin.

    Subclasses set the class attributes and implement `_estimate`, which gets a
    validated `~astro_clustermass.catalog.CatalogView` of the input columns they
    declared in ``inputs`` and returns ``(log10_mass, log10_mass_err, valid, reason)``.

    Attributes
    ----------
    name : str
        Short unique name, used in column names (``M500c_<name>``).
    inputs : tuple of str
        Canonical catalogue columns the estimator needs (see `astro_clustermass.catalog`).
    optional_inputs : tuple of str
        Canonical columns it uses when present.
    version : str
        Version of the estimator (of its calibration or weights).
    reference : str
        Literature reference (with DOI) of the method.
    """

    name: str = ""
    inputs: tuple = ()
    optional_inputs: tuple = ()
    version: str = _package_version
    reference: str = ""
    description: str = ""

    #: Cosmology the estimates are expressed in; subclasses may override.
    cosmology: Cosmology | None = None

    def parameters(self) -> dict:
        """Parameters that define this estimator, for provenance (plain Python types)."""
        return {}

    def unavailable(self, table, column_map=None) -> str:
        """Why this estimator, as built, has nothing to estimate from in ``table``.

        `~astro_clustermass.add_mass_columns` asks it of every estimator it chooses by
        itself (no ``estimators=``) whose input columns ``table`` has, and skips those
        that answer, instead of adding columns masked on every row. An estimator that
        needs data beside the catalogue columns (images, photons, spectra) overrides it;
        the default says nothing is missing.

        Parameters
        ----------
        table : `~astropy.table.Table`
            The catalogue.
        column_map : dict, optional
            Canonical name -> column name in ``table``.

        Returns
        -------
        str
            ``''`` when the estimator can run, else the reason in a few words.
        """
        return ""

    @abc.abstractmethod
    def _estimate(self, catalog: CatalogView):
        """Return ``(log10_mass, log10_mass_err, valid, reason)`` arrays of length N."""

    def estimate(self, table, column_map=None) -> MassEstimate:
        """Estimate M500c for every row of ``table`` without modifying it.

        Parameters
        ----------
        table : `~astropy.table.Table` or `~astropy.table.QTable`
            The cluster catalogue.
        column_map : dict, optional
            Canonical name -> column name in ``table``, for columns whose names
            are not recognised automatically.

        Returns
        -------
        `MassEstimate`
        """
        view = CatalogView(table, required=self.inputs, optional=self.optional_inputs,
                           column_map=column_map)
        with np.errstate(all="ignore"):  # rows with bad inputs are masked below
            result = self._estimate(view)
        if not isinstance(result, (tuple, list)) or len(result) != 4:
            raise EstimatorError(
                f"estimator {self.name!r}: _estimate must return (log10_mass, "
                f"log10_mass_err, valid, reason), got {type(result).__name__}"
            )
        mu, sig, valid, reason = (np.asarray(a) for a in result)
        del result
        for label, shape in (("log10_mass", mu.shape), ("log10_mass_err", sig.shape),
                             ("valid", valid.shape), ("reason", reason.shape)):
            if shape != (len(view),):
                raise EstimatorError(
                    f"estimator {self.name!r} returned {label} of shape {shape} for a "
                    f"catalogue of {len(view)} rows"
                )
        valid = valid.astype(bool) & view.row_valid
        bad = np.flatnonzero(~view.row_valid)
        input_reasons = view.row_reason[bad]
        del view  # and its per-row reasons (100 MB for 1e6 rows) before the copy below
        # One private copy of the reasons, with the rows' input reasons merged in, handed
        # to MassEstimate as it is (a 1e6-row str array is hundreds of MB: no second copy).
        width = max(reason.dtype.itemsize // 4 if reason.dtype.kind == "U" else 1,
                    input_reasons.dtype.itemsize // 4, 1)
        reason = reason.astype(f"<U{width}") if reason.size else reason.astype(str)
        reason[bad] = input_reasons
        reason.setflags(write=False)
        return MassEstimate(self.name, mu, sig, valid, reason, meta=self.provenance())

    def provenance(self) -> dict:
        """Provenance recorded in ``table.meta`` (plain Python types)."""
        cosmo = self.cosmology
        return {
            "name": self.name,
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "version": str(self.version),
            "reference": self.reference,
            "parameters": self.parameters(),
            "cosmology": None if cosmo is None else _cosmology_dict(cosmo),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }

    def add_columns(self, table, copy=True, column_map=None):
        """Estimate masses and write them as columns (see :ref:`columns`).

        Parameters
        ----------
        table : `~astropy.table.Table` or `~astropy.table.QTable`
        copy : bool
            If True (default) the input table is left untouched and a new table is
            returned; if False the columns are added to ``table`` itself.
        column_map : dict, optional
            Canonical name -> column name in ``table``.

        Returns
        -------
        table : same type as the input
        """
        estimate = self.estimate(table, column_map=column_map)
        return write_mass_columns(table, estimate, copy=copy)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r} inputs={self.inputs}>"


def _taken(reason):
    """``reason`` as a frozen str array: a read-only str array that owns its memory is
    taken as it is (nobody can change it), anything else is copied."""
    arr = np.asarray(reason)
    if arr.dtype.kind == "U" and not arr.flags.writeable and arr.flags.owndata:
        return arr
    return np.array(reason, dtype=str)


def _cosmology_dict(cosmo):
    params = {"class": type(cosmo).__name__, "name": cosmo.name}
    for key in ("H0", "Om0", "Ode0", "Ob0", "Tcmb0"):
        value = getattr(cosmo, key, None)
        if value is not None:
            params[key] = float(u.Quantity(value).value)
    return params


def write_mass_columns(table, estimate: MassEstimate, copy=True):
    """Write the columns of ``estimate`` onto ``table`` (or a copy of it).

    Columns written, for an estimator named NAME: ``M500c_NAME``, ``M500c_NAME_lo``,
    ``M500c_NAME_hi`` (Msun; median, 16th and 84th percentile), ``log10M500c_NAME``,
    ``log10M500c_NAME_err`` (dex), ``log10M500c_NAME_<suffix>`` (dex) for each of
    ``estimate.extra``, all masked where there is no estimate, and
    ``M500c_NAME_flag`` (str, the reason; empty for clean rows). Provenance goes to
    ``table.meta['astro_clustermass'][NAME]``.
    """
    if len(estimate) != len(table):
        raise EstimatorError(
            f"estimator {estimate.estimator!r} returned {len(estimate)} rows for a "
            f"table of {len(table)} rows"
        )
    out = table.copy(copy_data=True) if copy else table
    names = column_names(estimate.estimator)
    clash = [n for n in names.values() if n in out.colnames]
    if clash:
        raise EstimatorError(
            f"table already has column(s) {clash}; remove them or rename the estimator"
        )
    extra = {key: f"{names['log10']}_{key}" for key in estimate.extra}
    clash = [n for n in extra.values() if n in out.colnames]
    if clash:
        raise EstimatorError(f"table already has column(s) {clash}; remove them first")
    mask = ~estimate.valid
    values = {
        "mass": estimate.mass, "mass_lo": estimate.mass_lo, "mass_hi": estimate.mass_hi,
        "log10": estimate.log10_mass * u.dex(u.Msun), "log10_err": estimate.log10_mass_err * u.dex,
    }
    for key, q in values.items():
        if key == "log10":
            # dex(Msun) is awkward in FITS; store plain dex with a description.
            q = u.Quantity(estimate.log10_mass, u.dex)
        if isinstance(out, QTable):
            out[names[key]] = Masked(q, mask=mask)
        else:
            out[names[key]] = MaskedColumn(q.value, unit=q.unit, mask=mask)
        out[names[key]].info.description = _DESCRIPTIONS[key]
    notes = estimate.meta.get("extra_descriptions", {})
    for key, name in extra.items():
        out[name] = (Masked(estimate.extra[key] * u.dex, mask=mask) if isinstance(out, QTable)
                     else MaskedColumn(estimate.extra[key], unit=u.dex, mask=mask))
        out[name].info.description = str(notes.get(key, ""))
    # Printable ASCII, stored as bytes (a quarter of the memory of str; astropy gives
    # str back for every element, and FITS stores bytes anyway).
    out[names["flag"]] = np.char.encode(fits_safe_text(estimate.reason), "ascii")
    out[names["flag"]].info.description = _DESCRIPTIONS["flag"]
    provenance = out.meta.setdefault("astro_clustermass", {})
    provenance[estimate.estimator] = dict(estimate.meta)
    return out


def fits_safe_text(texts):
    """Strings as printable ASCII, which every table format (FITS included) can store.

    Accented letters lose their accents (``é`` -> ``e``), other non-ASCII characters
    become ``\\uXXXX`` escapes and control characters (newlines, tabs) spaces, so a
    plugin's reason in any language cannot make an output file unwritable.
    """
    texts = np.asarray(texts, dtype=str)
    if texts.size == 0 or all(t.isascii() and t.isprintable() for t in texts.tolist()):
        return texts
    return np.array([_ascii(t) for t in texts.tolist()], dtype=str)


def _ascii(text):
    import unicodedata

    text = "".join(c for c in unicodedata.normalize("NFKD", text)
                   if not unicodedata.combining(c))
    text = "".join(" " if c.isascii() and not c.isprintable() else c for c in text)
    return text.encode("ascii", "backslashreplace").decode("ascii")


_DESCRIPTIONS = {
    "mass": "M500c median estimate (h-free Msun)",
    "mass_lo": "M500c 16th percentile (h-free Msun)",
    "mass_hi": "M500c 84th percentile (h-free Msun)",
    "log10": "mean of log10(M500c / Msun)",
    "log10_err": "sigma of log10(M500c / Msun)",
    "flag": "why there is no estimate, or a warning; empty if clean",
}

# Keep Table imported for type hints in docs.
_ = Table
