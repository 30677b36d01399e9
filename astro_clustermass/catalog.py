"""Column conventions of cluster catalogues: canonical names, aliases, units, validation.

Every estimator reads its inputs through a `CatalogView`, which finds each canonical
column under its eSASS/eFEDS aliases (case-insensitively) or through an explicit
``column_map``, converts it to the canonical unit (right ascensions wrapped into
[0, 360) deg), and marks rows whose values are missing, out of range or implausible
(`ColumnSpec.plausible`) with a reason. The input table is never modified.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from astropy import units as u
from astropy.table import Table

from .utils.logger import log

__all__ = [
    "ColumnSpec", "CANONICAL_COLUMNS", "CatalogView", "MissingColumnError",
    "ColumnUnitError", "column_names", "check_estimator_name", "MAX_ESTIMATOR_NAME",
    "find_column", "parse_selection", "selection_mask", "register_column",
    "EFEDS_SELECTION", "EFEDS_HQ_SELECTION",
]


class MissingColumnError(KeyError):
    """A column an estimator needs is not in the catalogue."""

    def __str__(self):  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class ColumnUnitError(u.UnitsError):
    """A column carries a unit that cannot be converted to the canonical one."""


@dataclass(frozen=True)
class ColumnSpec:
    """A canonical catalogue column.

    Parameters
    ----------
    name : str
        Canonical name.
    unit : `~astropy.units.Unit`
        Canonical unit (``u.dimensionless_unscaled`` for pure numbers).
    aliases : tuple of str
        Other names it goes by in eSASS/eFEDS catalogues (matched case-insensitively).
    minimum, maximum : float
        Valid range in the canonical unit.
    inclusive_min : bool
        Whether ``minimum`` itself is valid.
    description : str
    plausible : tuple of float, optional
        ``(low, high)``: the values a galaxy cluster can have, in the canonical unit.
        A value in the valid range but outside this one is masked with a reason that
        suggests the likely mistake (a column in units of 1e44 erg/s, or log10, with no
        unit). None: every valid value is plausible.
    """

    name: str
    unit: u.UnitBase
    aliases: tuple = ()
    minimum: float = -np.inf
    maximum: float = np.inf
    inclusive_min: bool = True
    description: str = ""
    plausible: tuple | None = None

    def check_range(self, values):
        """Boolean array: which finite values lie in the valid range."""
        lower = values >= self.minimum if self.inclusive_min else values > self.minimum
        return np.isfinite(values) & lower & (values <= self.maximum)

    def check_plausible(self, values):
        """Boolean array: which values are not outside the plausible range."""
        if self.plausible is None:
            return np.ones(np.shape(values), bool)
        lo, hi = self.plausible
        with np.errstate(invalid="ignore"):
            return ~((values < lo) | (values > hi))

    def plausible_text(self):
        unit = "" if self.unit == u.dimensionless_unscaled else f" {self.unit}"
        return f"[{self.plausible[0]:g}, {self.plausible[1]:g}]{unit}"

    def range_text(self):
        lo = "[" if self.inclusive_min else "("
        unit = "" if self.unit == u.dimensionless_unscaled else f" {self.unit}"
        return f"{lo}{self.minimum:g}, {self.maximum:g}]{unit}"


_dimless = u.dimensionless_unscaled
_specs = [
    ColumnSpec("z", _dimless, ("redshift", "z_final", "z_best", "zspec", "z_spec", "z_lambda"),
               0.0, 20.0, False, "cluster redshift"),
    ColumnSpec("RA", u.deg, ("ra_corr", "ra_deg", "raj2000", "ra_x"), 0.0, 360.0, True,
               "right ascension (ICRS)"),
    ColumnSpec("DEC", u.deg, ("dec_corr", "dec_deg", "dej2000", "decj2000", "dec_x"),
               -90.0, 90.0, True, "declination (ICRS)"),
    ColumnSpec("LX", u.erg / u.s, ("l_x", "lx_soft", "lx500", "l500", "lx_500", "l_500",
                                   "lx_0520", "l_x_500"),
               0.0, np.inf, False, "rest-frame 0.5-2 keV luminosity within R500",
               (1e38, 1e48)),
    ColumnSpec("LX_err", u.erg / u.s, ("lx_soft_err", "lx500_err", "l500_err", "lx_500_err",
                                       "e_lx"),
               0.0, np.inf, True, "1-sigma uncertainty of LX"),
    ColumnSpec("count_rate", u.ct / u.s, ("ml_rate", "rate", "cr", "countrate"),
               0.0, np.inf, False, "0.2-2.3 keV source count rate", (1e-7, 1e5)),
    ColumnSpec("count_rate_err", u.ct / u.s, ("ml_rate_err", "rate_err", "cr_err",
                                              "countrate_err"),
               0.0, np.inf, True, "1-sigma uncertainty of count_rate"),
    ColumnSpec("DET_LIKE", _dimless, ("det_like_0", "detlike"), -np.inf, np.inf, True,
               "detection likelihood"),
    ColumnSpec("EXT_LIKE", _dimless, ("ext_like_0", "extlike"), -np.inf, np.inf, True,
               "extent likelihood"),
    ColumnSpec("T", u.keV, ("kt", "tx", "t_x", "t500", "kt500", "kt_500"), 0.0, np.inf, False,
               "ICM temperature", (0.05, 100.0)),
    ColumnSpec("T_err", u.keV, ("kt_err", "tx_err", "t_x_err", "t500_err"), 0.0, np.inf, True,
               "1-sigma uncertainty of T"),
    ColumnSpec("M500c", u.Msun, ("m500", "m500_true", "m500_wl_final", "m500c_true"),
               0.0, np.inf, False, "reference (true or weak-lensing) M500c, for evaluation",
               (1e10, 1e17)),
]

#: Canonical columns by name.
CANONICAL_COLUMNS = {spec.name: spec for spec in _specs}


#: Longest estimator name [characters]: its longest column, ``log10M500c_<name>_err``,
#: must fit in a FITS column name (68 characters).
MAX_ESTIMATOR_NAME = 68 - len("log10M500c__err")

_ESTIMATOR_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def register_column(spec):
    """Add a canonical column, for an estimator that reads a quantity the package does
    not know (a richness, a Compton-y, a velocity dispersion).

    Call it in the plugin's light module (the one its entry point names) before its
    `~astro_clustermass.EstimatorSpec` lists the column in ``inputs``: the column is then
    found by name or alias, converted to its unit, checked against its range, masked
    with a reason where it is missing or out of range, and can be named with
    ``column_map=``, like the package's own columns.

    Parameters
    ----------
    spec : `ColumnSpec`
        The column. Registering the same spec again does nothing.

    Returns
    -------
    `ColumnSpec`

    Raises
    ------
    ValueError
        A different column of that name is already registered (a built-in one, or
        another plugin's).
    """
    if not isinstance(spec, ColumnSpec):
        raise TypeError(f"register_column takes a ColumnSpec, not {type(spec).__name__}")
    known = CANONICAL_COLUMNS.get(spec.name)
    if known is not None and known != spec:
        raise ValueError(f"a different canonical column {spec.name!r} is already registered "
                         f"({known.description or known.unit}); choose another name")
    CANONICAL_COLUMNS[spec.name] = spec
    return spec


def check_estimator_name(name):
    """Raise `ValueError` unless ``name`` can name an estimator's columns in every format.

    An estimator name is ASCII letters, digits and ``_ . + -`` (starting with a letter or
    digit), at most `MAX_ESTIMATOR_NAME` characters: FITS column names are ASCII and at
    most 68 characters long.
    """
    if not isinstance(name, str) or not _ESTIMATOR_NAME.match(name):
        raise ValueError(f"invalid estimator name {name!r}: use ASCII letters, digits and "
                         "'_.+-', starting with a letter or digit")
    if len(name) > MAX_ESTIMATOR_NAME:
        raise ValueError(f"invalid estimator name {name[:20]!r}... ({len(name)} characters): "
                         f"at most {MAX_ESTIMATOR_NAME}, so that its columns fit in FITS")
    return name


def column_names(estimator):
    """Output column names for the estimator called ``estimator``.

    Raises `ValueError` for a name `check_estimator_name` refuses.

    Returns
    -------
    dict
        Keys ``mass, mass_lo, mass_hi, log10, log10_err, flag``.
    """
    check_estimator_name(estimator)
    return {
        "mass": f"M500c_{estimator}",
        "mass_lo": f"M500c_{estimator}_lo",
        "mass_hi": f"M500c_{estimator}_hi",
        "log10": f"log10M500c_{estimator}",
        "log10_err": f"log10M500c_{estimator}_err",
        "flag": f"M500c_{estimator}_flag",
    }


def find_column(table, name, column_map=None):
    """Name of the column of ``table`` holding canonical column ``name``, or None.

    ``column_map`` wins; then an exact match of the canonical name; then a
    case-insensitive match of the name or one of its aliases. Two different
    candidate columns are an error: the caller must say which one with ``column_map``.
    """
    if column_map and name in column_map:
        target = column_map[name]
        if target not in table.colnames:
            raise MissingColumnError(
                f"column_map maps {name!r} to {target!r}, which is not in the table "
                f"(columns: {', '.join(table.colnames)})"
            )
        return target
    if name in table.colnames:
        return name
    spec = CANONICAL_COLUMNS.get(name)
    wanted = {name.lower(), *(a.lower() for a in (spec.aliases if spec else ()))}
    hits = [c for c in table.colnames if c.lower() in wanted]
    if len(hits) > 1:
        raise MissingColumnError(
            f"several columns could be {name!r}: {hits}; choose one with "
            f"column_map={{{name!r}: ...}}"
        )
    return hits[0] if hits else None


def _as_canonical_quantity(table, colname, spec):
    """Column ``colname`` as a float Quantity in the spec's unit, NaN where masked."""
    col = table[colname]
    # Booleans and complex numbers are not physical values of any canonical column: a
    # True redshift or a complex luminosity would otherwise be silently cast.
    if col.dtype.kind not in "iuf":
        raise ColumnUnitError(
            f"column {colname!r} ({spec.name}) holds {col.dtype} values, not real numbers"
        )
    unit = getattr(col, "unit", None)
    mask = np.asarray(getattr(col, "mask", np.zeros(len(col), bool)), dtype=bool)
    values = np.array(getattr(col, "value", col), dtype=float, copy=True)
    if np.ndim(mask) == 0:
        mask = np.full(len(values), bool(mask))
    if values.ndim != 1:
        raise ColumnUnitError(
            f"column {colname!r} ({spec.name}) has shape {col.shape}; expected one value per row"
        )
    values[mask] = np.nan
    if unit is None:
        if spec.unit != u.dimensionless_unscaled:
            log.info(f"column {colname!r} has no unit; assuming {spec.unit} for {spec.name}")
        return _wrapped(values, spec) * spec.unit
    try:
        unit = u.Unit(unit)
        if isinstance(unit, u.UnrecognizedUnit):
            raise ValueError("unrecognised")
        return _wrapped((values * unit).to_value(spec.unit), spec) * spec.unit
    except u.UnitConversionError:
        raise ColumnUnitError(
            f"column {colname!r} ({spec.name}) has unit {unit}, which cannot be converted "
            f"to {spec.unit}"
        ) from None
    # a unit string astropy cannot read, or one whose scale overflows or is zero (e.g.
    # '1a42', year**42, or '0', found by test_bad_input)
    except (ValueError, TypeError, OverflowError, ZeroDivisionError, u.UnitsError):
        raise ColumnUnitError(
            f"column {colname!r} ({spec.name}) has the unit {str(unit)!r}, which cannot be "
            f"read; correct the unit, or give the values in {spec.unit}"
        ) from None


def _wrapped(values, spec):
    """Right ascensions wrapped into [0, 360) deg (as the event files' are); else as is."""
    if spec.name == "RA":
        with np.errstate(invalid="ignore"):
            values = np.where(np.isfinite(values), np.mod(values, 360.0), values)
    return values


class CatalogView:
    """Read-only access to the canonical columns of a catalogue.

    Parameters
    ----------
    table : `~astropy.table.Table` or `~astropy.table.QTable`
    required : sequence of str
        Canonical columns that must be present; rows where any of them is missing
        (masked, NaN) or out of range are marked invalid with a reason.
    optional : sequence of str
        Canonical columns used when present; bad values there are NaN but do not
        invalidate the row.
    column_map : dict, optional
        Canonical name -> column name in ``table``.

    Attributes
    ----------
    row_valid : array of bool
        Rows whose required inputs are all present, in range and plausible; the
        required columns read as NaN in the other rows.
    row_reason : array of str
        Reason for each invalid row ('' for valid rows).
    columns : dict
        Canonical name -> column name used.
    """

    def __init__(self, table, required=(), optional=(), column_map=None):
        if not isinstance(table, Table):
            raise TypeError(f"expected an astropy Table or QTable, got {type(table).__name__}")
        if column_map is not None:
            unknown = set(column_map) - set(CANONICAL_COLUMNS)
            if unknown:
                raise MissingColumnError(
                    f"column_map names unknown canonical column(s) {sorted(unknown)}; "
                    f"known: {sorted(CANONICAL_COLUMNS)}"
                )
        self._table = table
        self._n = len(table)
        self._values = {}
        self.columns = {}
        self.row_valid = np.ones(self._n, dtype=bool)
        bad = []  # (canonical name, rows out of range, rows implausible)
        missing = []
        for name in required:
            colname = find_column(table, name, column_map)
            if colname is None:
                missing.append(name)
                continue
            self._load(table, name, colname)
            spec = CANONICAL_COLUMNS[name]
            values = self._values[name].value
            ok = spec.check_range(values)
            plausible = spec.check_plausible(values)
            usable = ok & plausible
            bad.append((name, ~ok, ok & ~plausible, values))
            self.row_valid &= usable
            if not usable.all():
                # An unusable value reads as NaN: estimators that look at every row
                # (e.g. to place images on the sky) see the row as missing.
                self._values[name] = np.where(usable, values, np.nan) * spec.unit
        if missing:
            spec_text = "; ".join(
                f"{m} ({CANONICAL_COLUMNS[m].description}; aliases: "
                f"{', '.join(CANONICAL_COLUMNS[m].aliases) or 'none'})" for m in missing
            )
            raise MissingColumnError(
                f"catalogue lacks required column(s): {spec_text}. Columns present: "
                f"{', '.join(table.colnames) or 'none'}. Use column_map to name them."
            )
        for name in optional:
            colname = find_column(table, name, column_map)
            if colname is not None:
                self._load(table, name, colname)
                spec = CANONICAL_COLUMNS[name]
                values = self._values[name].value
                unusable = ~(spec.check_range(values) & spec.check_plausible(values))
                if unusable.any():
                    values = values.copy()
                    values[unusable] = np.nan
                    self._values[name] = values * spec.unit
        self.row_reason = self._reasons(bad)

    def _reasons(self, bad):
        """Why each row is invalid ('' for valid rows), built for the invalid rows only."""
        reason = np.zeros(self._n, dtype="<U1")
        rows = np.flatnonzero(~self.row_valid)
        if not rows.size:
            return reason
        texts = []
        for i in rows:
            parts = []
            for name, out_of_range, implausible, values in bad:
                if out_of_range[i]:
                    parts.append(self._bad_value_reason(name, values[i]))
                elif implausible[i]:
                    parts.append(self._implausible_reason(name, values[i]))
            texts.append("; ".join(parts))
        reason = reason.astype(f"<U{max(len(t) for t in texts)}")
        reason[rows] = texts
        return reason

    def _implausible_reason(self, name, value):
        spec = CANONICAL_COLUMNS[name]
        hint = _UNIT_HINTS.get(name, "in another unit")
        return (f"{self.columns[name]}={value:g} {spec.unit} outside the plausible "
                f"range {spec.plausible_text()}: {hint}?")

    def _load(self, table, name, colname):
        self.columns[name] = colname
        self._values[name] = _as_canonical_quantity(table, colname, CANONICAL_COLUMNS[name])

    def _bad_value_reason(self, name, value):
        spec = CANONICAL_COLUMNS[name]
        col = self.columns[name]
        if not np.isfinite(value):
            return f"{col} missing or not finite"
        return f"{col}={value:g} outside {spec.range_text()}"

    def __len__(self):
        return self._n

    def __contains__(self, name):
        return name in self._values

    def __getitem__(self, name):
        """Canonical column ``name`` as a Quantity in its canonical unit (a copy)."""
        try:
            return self._values[name].copy()
        except KeyError:
            raise MissingColumnError(
                f"column {name!r} was not requested or is not in the catalogue"
            ) from None

    def column(self, colname):
        """A copy of any column of the original table, by its name in that table.

        For inputs that are not canonical scalar columns (e.g. an image column).
        """
        if colname not in self._table.colnames:
            raise MissingColumnError(
                f"catalogue has no column {colname!r} (columns: {', '.join(self._table.colnames)})"
            )
        return self._table[colname].copy()

    def get(self, name, default=None):
        """Like ``view[name]`` but returns ``default`` if the column is absent."""
        return self[name] if name in self._values else default


#: What a value outside a column's plausible range most likely is.
_UNIT_HINTS = {
    "LX": "in units of 1e44 erg/s, or log10(L_X), with no unit in the column",
    "count_rate": "in other units (counts/ks?), or log10, with no unit in the column",
    "T": "in K, or log10, with no unit in the column",
    "M500c": "in units of 1e14 Msun, or log10(M/Msun), with no unit in the column",
}


# -- selections ------------------------------------------------------------------------
#: The eFEDS cluster selection of seed 000 (sect. 2.2): extended and detected.
EFEDS_SELECTION = "EXT_LIKE > 6 & DET_LIKE > 5"
#: Seed 000's high-quality sample.
EFEDS_HQ_SELECTION = "EXT_LIKE > 60 & DET_LIKE > 60"

_CONDITION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|>|<|==|!=)\s*([-+0-9.eE]+)\s*$")
_COMPARE = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal,
            "==": np.equal, "!=": np.not_equal}


def parse_selection(text):
    """Parse ``'COL OP NUMBER & COL OP NUMBER ...'`` into a list of (column, op, value).

    OP is one of ``> >= < <= == !=``; conditions are joined with ``&`` (or ``,`` or
    ``and``). An empty string selects every row.
    """
    conds = []
    for part in re.split(r"[&,]| and ", str(text or "")):
        if not part.strip():
            continue
        m = _CONDITION.match(part)
        if m is None:
            raise ValueError(f"cannot parse selection condition {part.strip()!r} "
                             f"(want e.g. {EFEDS_SELECTION!r})")
        conds.append((m.group(1), m.group(2), float(m.group(3))))
    return conds


def selection_mask(table, selection):
    """Boolean mask of the rows of ``table`` that pass ``selection``.

    Parameters
    ----------
    table : `~astropy.table.Table`
    selection : str or array of bool
        Condition string (`parse_selection`; column names are matched exactly, then as
        canonical names with their eSASS aliases, then case-insensitively), or a mask.
        Rows whose value is masked or not finite fail the condition.

    Raises
    ------
    KeyError
        A column the selection needs is not in the table (the message names it).
    """
    n = len(table)
    if not isinstance(selection, str) and selection is not None:
        mask = np.asarray(selection, dtype=bool)
        if mask.shape != (n,):
            raise ValueError(f"selection mask has shape {mask.shape}; expected ({n},)")
        return mask.copy()
    mask = np.ones(n, dtype=bool)
    lower = {c.lower(): c for c in table.colnames}
    for name, op, value in parse_selection(selection):
        col = name if name in table.colnames else None
        if col is None and name in CANONICAL_COLUMNS:
            try:
                col = find_column(table, name)
            except MissingColumnError:
                col = None
        if col is None:
            col = lower.get(name.lower())
        if col is None:
            raise KeyError(f"selection needs column {name!r}, which is not in the catalogue "
                           f"(columns: {', '.join(table.colnames)})")
        raw = table[col]
        values = np.asarray(getattr(raw, "value", raw))
        if values.dtype.kind not in "biuf":
            raise ValueError(f"selection column {col!r} holds {values.dtype} values, not "
                             "numbers")
        values = np.array(values, dtype=float)
        values[np.asarray(np.ma.getmaskarray(raw)) if hasattr(raw, "mask") else False] = np.nan
        with np.errstate(invalid="ignore"):
            mask &= _COMPARE[op](values, value) & np.isfinite(values)
    return mask
