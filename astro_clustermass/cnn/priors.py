"""Priors on the simulator's cluster model, drawn per training chunk (issue 23; no torch).

The CNN learns the mapping from images to masses of the simulator's cluster physics.
Parameters that real data constrain only within a range (scaling-relation normalisations,
slopes, evolution and scatter, the hydrostatic bias, core-radius and cool-core
distributions) get priors from the literature in a YAML file (the shipped one:
``astro_clustermass/data/cnn/simulator_priors.yaml``, sources and widths documented in
it). `SimulatorPriors` reads and validates such a file against
`~astro_clustermass.simulate.SimConfig`, draws a parameter set per chunk from a seed
(reproducible, independent of the order in which chunks are simulated), and says for a
given configuration how many prior sigmas each parameter lies from the prior's centre.

Each prior lives in its own coordinate: the value (``normal``, ``uniform``) or log10 of the
value (``lognormal``, width ``sigma_dex``). "Sigmas from the centre" are measured in that
coordinate.
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np

from ..utils.data import package_data

__all__ = ["Prior", "SimulatorPriors", "default_priors_path", "PriorError"]

FORMAT = "astro_clustermass-simulator-priors"

#: Seed-sequence key of the prior draws (``SeedSequence(seed, spawn_key=(23, chunk))``):
#: different from the simulator's own keys, so a chunk's draw and its sky are independent.
_SPAWN_KEY = 23


class PriorError(ValueError):
    """A priors file is malformed or does not fit `SimConfig`."""


def default_priors_path():
    """The shipped priors file, ``astro_clustermass/data/cnn/simulator_priors.yaml``."""
    return package_data("cnn", "simulator_priors.yaml")


@dataclasses.dataclass(frozen=True)
class Prior:
    """The prior of one `SimConfig` field.

    Parameters
    ----------
    name : str
        The `SimConfig` field.
    dist : {"normal", "lognormal", "uniform"}
    centre : float
        Mean (``normal``), median (``lognormal``) or midpoint (``uniform``), in the
        field's unit.
    sigma : float
        Standard deviation in the prior's coordinate: the value for ``normal`` and
        ``uniform`` (``(high - low) / sqrt(12)``), log10 of the value for ``lognormal``.
    low, high : float
        Support: the truncation bounds (``uniform``: its range).
    source : str
    verified : bool
        Whether the numbers were checked against the paper.
    """

    name: str
    dist: str
    centre: float
    sigma: float
    low: float
    high: float
    source: str = ""
    verified: bool = False
    unit: str = ""

    def coordinate(self, value):
        """The prior's coordinate of ``value`` (log10 for ``lognormal``)."""
        value = np.asarray(value, float)
        return np.log10(value) if self.dist == "lognormal" else value

    def n_sigma(self, value):
        """How many prior sigmas ``value`` lies from the centre (signed)."""
        return (self.coordinate(value) - self.coordinate(self.centre)) / self.sigma

    def from_n_sigma(self, k):
        """The value ``k`` prior sigmas from the centre."""
        x = self.coordinate(self.centre) + k * self.sigma
        return float(10.0 ** x if self.dist == "lognormal" else x)

    def in_support(self, value):
        return bool(self.low <= float(value) <= self.high)

    def draw(self, rng):
        """One draw (truncated to ``[low, high]`` by redrawing)."""
        if self.dist == "uniform":
            return float(rng.uniform(self.low, self.high))
        for _ in range(1000):
            value = self.from_n_sigma(rng.standard_normal())
            if self.in_support(value):
                return value
        raise PriorError(f"{self.name}: no draw inside [{self.low}, {self.high}] in 1000 tries")


def _prior_from_entry(name, e, where):
    dist = e.get("dist")
    try:
        if dist == "uniform":
            low, high = float(e["low"]), float(e["high"])
            centre, sigma = 0.5 * (low + high), (high - low) / math.sqrt(12.0)
        elif dist in ("normal", "lognormal"):
            centre = float(e["centre"])
            sigma = float(e["sigma_dex"] if dist == "lognormal" else e["sigma"])
            low, high = (float(b) for b in e["bounds"])
        else:
            raise PriorError(f"{where}: {name}: dist must be normal, lognormal or uniform, "
                             f"not {dist!r}")
    except KeyError as exc:
        raise PriorError(f"{where}: {name}: a {dist} prior needs {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        if isinstance(exc, PriorError):
            raise
        raise PriorError(f"{where}: {name}: {exc}") from None
    prior = Prior(name, dist, centre, sigma, low, high, str(e.get("source", "")).strip(),
                  bool(e.get("verified", False)), str(e.get("unit", "")))
    if not (np.isfinite(sigma) and sigma > 0):
        raise PriorError(f"{where}: {name}: the width must be positive, not {sigma}")
    if dist == "lognormal" and not (centre > 0 and low > 0):
        raise PriorError(f"{where}: {name}: a lognormal prior needs a positive centre and "
                         "bounds")
    if not low < high:
        raise PriorError(f"{where}: {name}: bounds [{low}, {high}] are empty")
    if not prior.in_support(centre):
        raise PriorError(f"{where}: {name}: centre {centre} lies outside its bounds "
                         f"[{low}, {high}]")
    if dist != "uniform" and not (prior.in_support(prior.from_n_sigma(-2))
                                  and prior.in_support(prior.from_n_sigma(2))):
        raise PriorError(f"{where}: {name}: the bounds [{low}, {high}] cut into the prior's "
                         "+-2 sigma range")
    return prior


class SimulatorPriors:
    """Priors on `SimConfig` fields, read from a YAML file.

    Parameters
    ----------
    priors : dict
        Name -> `Prior`.
    meta : dict
        The file's other keys (name, created, per-parameter notes), for the record.
    path : str, optional
    """

    def __init__(self, priors, meta=None, path=None):
        self.priors = dict(priors)
        self.meta = dict(meta or {})
        self.path = path

    # -- reading ----------------------------------------------------------------------
    @classmethod
    def read(cls, path=None, validate=True):
        """Read a priors file (default: the shipped one) and validate it.

        Parameters
        ----------
        path : str, optional
            A YAML file in the format of ``data/cnn/simulator_priors.yaml``; ``None`` or
            ``"default"``: that file.
        validate : bool
            Check the parameters against `SimConfig` (`validate`).
        """
        import yaml

        if path is None or path == "default":
            path = default_priors_path()
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"priors file {path!r} does not exist")
        with open(path) as fh:
            try:
                doc = yaml.safe_load(fh)
            except yaml.YAMLError as exc:
                raise PriorError(f"{path}: not valid YAML ({exc})") from exc
        return cls.from_dict(doc, where=path, validate=validate)

    @classmethod
    def from_dict(cls, doc, where="priors", validate=True):
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise PriorError(f"{where}: not an {FORMAT} file (its 'format' key)")
        entries = doc.get("parameters")
        if not isinstance(entries, dict) or not entries:
            raise PriorError(f"{where}: no 'parameters'")
        priors = {}
        for name, e in entries.items():
            if not isinstance(e, dict):
                raise PriorError(f"{where}: {name}: expected a mapping, got {e!r}")
            priors[name] = _prior_from_entry(name, e, where)
        out = cls(priors, {k: v for k, v in doc.items() if k != "parameters"} |
                  {"entries": entries}, path=where)
        if validate:
            out.validate()
        return out

    @property
    def names(self):
        """The parameters with a prior (file order)."""
        return list(self.priors)

    def validate(self, config=None):
        """Check every parameter against `SimConfig`; return notes on soft differences.

        A parameter that is not a float field of `SimConfig` is an error
        (`PriorError`). A prior whose centre differs from ``config``'s value (default: the
        simulator's defaults) is allowed and reported in the returned notes, with the
        number of prior sigmas between them.
        """
        from ..simulate import DEFAULT_CONFIG, SimConfig

        config = config or DEFAULT_CONFIG
        fields = {f.name: f for f in dataclasses.fields(SimConfig)}
        notes = []
        for name, prior in self.priors.items():
            if name not in fields:
                raise PriorError(f"{self.path}: {name!r} is not a simulator parameter "
                                 "(SimConfig field)")
            if not isinstance(fields[name].default, float) or isinstance(
                    fields[name].default, bool):
                kind = type(fields[name].default).__name__
                raise PriorError(f"{self.path}: {name!r} is a {kind} SimConfig field; "
                                 "priors are for float fields")
            value = getattr(config, name)
            if not math.isclose(value, prior.centre, rel_tol=1e-9, abs_tol=1e-12):
                notes.append(f"{name}: the configuration's {value:g} is "
                             f"{float(prior.n_sigma(value)):+.2f} prior sigma from the "
                             f"centre {prior.centre:g}")
        return notes

    # -- drawing ----------------------------------------------------------------------
    def draw(self, seed, chunk):
        """The parameters of chunk ``chunk`` of a training set seeded ``seed``.

        Reproducible from ``(seed, chunk)`` alone (``numpy.random.SeedSequence(seed,
        spawn_key=(23, chunk))``), independent of other chunks and of the order in which
        they are simulated.

        Returns
        -------
        dict
            Parameter name -> value (plain floats, in the field's unit).
        """
        rng = np.random.default_rng(np.random.SeedSequence(int(seed),
                                                           spawn_key=(_SPAWN_KEY, int(chunk))))
        return {name: prior.draw(rng) for name, prior in self.priors.items()}

    def centre(self):
        """The prior centres (parameter -> value)."""
        return {name: p.centre for name, p in self.priors.items()}

    def conditioned(self, draw, coefficients, n_sigma):
        """``draw`` moved to where a linear combination of the coordinates is ``n_sigma``.

        For independent Gaussian priors, the most probable change of ``draw`` that puts
        ``sum_i a_i x_i`` (``x_i`` the prior coordinates, e.g. log10 of a lognormal
        parameter) at ``n_sigma`` standard deviations of its prior from its prior mean:
        ``x += (target - a.x) Sigma a / (a' Sigma a)`` (the conditional mean). Used to place
        a validation sky near the edge of the prior in the direction that matters most
        (e.g. the L_X normalisation at fixed true mass).

        Parameters
        ----------
        draw : dict
            Parameter -> value (e.g. from `draw`).
        coefficients : dict
            Parameter -> a_i (d combination / d coordinate); uniform priors are not allowed.
        n_sigma : float
        """
        names = list(coefficients)
        for n in names:
            if self.priors[n].dist == "uniform":
                raise PriorError(f"{n}: conditioning needs Gaussian priors")
        a = np.array([float(coefficients[n]) for n in names])
        s = np.array([self.priors[n].sigma for n in names])
        x = np.array([float(self.priors[n].coordinate(draw[n])) for n in names])
        x0 = np.array([float(self.priors[n].coordinate(self.priors[n].centre)) for n in names])
        width = math.sqrt(float(np.sum((a * s) ** 2)))
        target = float(a @ x0) + n_sigma * width
        x = x + (target - float(a @ x)) * s ** 2 * a / width ** 2
        out = dict(draw)
        for n, xi in zip(names, x):
            out[n] = float(10.0 ** xi if self.priors[n].dist == "lognormal" else xi)
        return out

    # -- applying and judging -----------------------------------------------------------
    def apply(self, config, draw):
        """``config`` with the drawn parameters (a new `SimConfig`)."""
        unknown = set(draw) - set(self.priors)
        if unknown:
            raise PriorError(f"draw has parameters without a prior: {sorted(unknown)}")
        return config.replace(**{k: float(v) for k, v in draw.items()})

    def n_sigma(self, config):
        """Signed prior sigmas of each parameter of ``config`` from the prior's centre.

        Parameters
        ----------
        config : SimConfig or dict
            A configuration (or a dict of parameter values, e.g. a draw).

        Returns
        -------
        dict
            Parameter -> (value - centre) / sigma in the prior's coordinate.
        """
        get = config.get if isinstance(config, dict) else \
            (lambda n, d=None: getattr(config, n))
        return {n: float(p.n_sigma(get(n))) for n, p in self.priors.items()
                if get(n) is not None}

    def outside(self, config):
        """Parameters of ``config`` outside the prior's support (name -> value)."""
        get = config.get if isinstance(config, dict) else (lambda n: getattr(config, n))
        return {n: get(n) for n, p in self.priors.items() if not p.in_support(get(n))}

    def to_dict(self):
        """The file's content (plain Python), for settings and manifests."""
        return {"format": FORMAT, **{k: v for k, v in self.meta.items() if k != "entries"},
                "parameters": self.meta.get("entries", {})}

    def table(self):
        """An `~astropy.table.Table`: parameter, dist, centre, sigma, bounds, verified."""
        from astropy.table import Table

        rows = [(p.name, p.dist, p.centre, p.sigma, p.low, p.high, p.verified)
                for p in self.priors.values()]
        return Table(rows=rows, names=("parameter", "dist", "centre", "sigma", "low", "high",
                                       "verified"))

    def __repr__(self):
        return f"<SimulatorPriors {self.meta.get('name', '')!r}: {', '.join(self.names)}>"
