"""Training data sets for the CNN: the on-disk format, selection, splits, normalisation.

This module does not import torch.

On-disk format (HDF5, ``format = "astro_clustermass-cnn-dataset"``, version 1)
-------------------------------------------------------------------------------
``/ebi``
    float32, shape ``(N, ny, nx, nbands)`` = (cluster, y, x, band), channel-last as
    written by `astro_clustermass.ebi` (default ``(N, 50, 50, 10)``). The teaching layout
    key ``gsm_3dImgs`` is read as well.
``/catalog``
    An `astropy.table.Table` written with ``write_table_hdf5(path="catalog",
    serialize_meta=True)``, one row per image: ``M500c`` [Msun], ``z``, ``DET_LIKE``,
    ``EXT_LIKE``, ``ML_RATE``, ``ML_RATE_ERR`` [ct/s], ``LX`` [erg/s], ``RA``, ``DEC`` [deg],
    ``realisation`` (or chunk) id and ``cluster_id`` (the halo identifier; with the
    realisation it defines the groups that the train/validation/test split never breaks).
    Teaching-layout names (``Lx_soft``, ``kT``, ...) are accepted by `read_dataset`.
root attributes
    ``format``, ``format_version``, ``ebi_parameters`` (YAML text of
    ``EBIParameters.to_dict()``), ``selection`` (the cut applied when the file was
    built), ``source`` (what it was built from), ``created`` (UTC ISO date).

Write with `write_dataset`, read with `read_dataset`;
`astro_clustermass.cnn.training_set.build_dataset` makes one from simulator output.
Selections are `astro_clustermass.catalog.selection_mask` strings.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import warnings
from dataclasses import asdict, dataclass

import numpy as np

from ..catalog import EFEDS_SELECTION
from ..catalog import selection_mask as apply_selection
from ..io.ebi_stack import write_image_file
from ..utils.exceptions import InputDataWarning
from ..utils.optional import require

__all__ = ["FORMAT", "FORMAT_VERSION", "DEFAULT_SELECTION", "TrainingData", "Normalisation",
           "write_dataset", "read_dataset", "split_by_cluster", "prepare_splits",
           "uniform_mass_weights", "file_sha256"]


FORMAT = "astro_clustermass-cnn-dataset"
FORMAT_VERSION = 1
#: The eFEDS cluster selection of seed 000 sect. 2.2.
DEFAULT_SELECTION = EFEDS_SELECTION

_IMAGE_KEYS = ("ebi", "gsm_3dImgs")
_MASS_NAMES = ("M500c", "m500c", "M500", "m500_true", "M500c_true")
_Z_NAMES = ("z", "redshift", "z_final", "Z")
_GROUP_NAMES = ("cluster_id", "halo_id", "HALO_ID", "CLUSTER_ID", "id", "ID", "SRC_ID")
_REAL_NAMES = ("realisation", "realization", "chunk", "chunk_id", "REALISATION")


def _first(table, names):
    for n in names:
        if n in table.colnames:
            return n
    return None


@dataclass
class TrainingData:
    """Images and catalogue of a training data set, in memory.

    Attributes
    ----------
    ebi : ndarray, shape (N, ny, nx, nbands), float32
    catalog : `~astropy.table.Table`
    ebi_parameters : dict or None
        ``EBIParameters.to_dict()`` of the images (None if the file does not say).
    attrs : dict
        Other file attributes (selection, source, created).
    path : str or None
    """

    ebi: np.ndarray
    catalog: object
    ebi_parameters: dict | None = None
    attrs: dict | None = None
    path: str | None = None

    def __len__(self):
        return len(self.catalog)

    @property
    def log10_mass(self):
        """log10(M500c / Msun) of every row."""
        from astropy import units as u

        name = _first(self.catalog, _MASS_NAMES)
        if name is None:
            raise KeyError(f"catalogue has no mass column (tried {_MASS_NAMES}); "
                           f"columns: {self.catalog.colnames}")
        col = self.catalog[name]
        values = np.asarray(getattr(col, "value", col), dtype=float)
        unit = getattr(col, "unit", None)
        if unit is not None:
            values = (values * u.Unit(unit)).to_value(u.Msun)
        return np.log10(values)

    @property
    def z(self):
        name = _first(self.catalog, _Z_NAMES)
        if name is None:
            raise KeyError(f"catalogue has no redshift column (tried {_Z_NAMES})")
        return np.asarray(self.catalog[name], dtype=float)

    def subset(self, index):
        index = np.asarray(index)
        return TrainingData(self.ebi[index], self.catalog[index], self.ebi_parameters,
                            self.attrs, self.path)

    def group_keys(self):
        """One string per row identifying the cluster (realisation + halo id).

        Rows of one cluster (e.g. several detections or images of the same halo) share
        the key, so a split by key never puts one cluster in two sets.
        """
        gname = _first(self.catalog, _GROUP_NAMES)
        rname = _first(self.catalog, _REAL_NAMES)
        if gname is None:
            warnings.warn(f"dataset has no cluster-id column {_GROUP_NAMES}: splitting by "
                          "row (images of one cluster may land in two sets)",
                          InputDataWarning, stacklevel=2)
            ids = np.arange(len(self)).astype(str)
        else:
            ids = np.asarray(self.catalog[gname]).astype(str)
        if rname is not None:
            ids = np.char.add(np.char.add(np.asarray(self.catalog[rname]).astype(str), ":"), ids)
        return ids


@dataclass(frozen=True)
class Normalisation:
    """How EBIs, redshifts and masses are scaled for the network (stored in the manifest).

    Network input image: ``log1p(clip(ebi, 0, None)) / image_scale``, bands moved to the
    channel axis. Redshift input: ``(z - z_offset) / z_scale``. Target:
    ``t = (log10(M500c/Msun) - y_offset) / y_scale``; predictions are mapped back with
    ``log10 M = y_offset + y_scale * mu_t`` and ``sigma_dex = y_scale * sigma_t``.
    """

    image_transform: str = "log1p"
    image_scale: float = float(np.log1p(36.0))
    z_offset: float = 0.4
    z_scale: float = 0.3
    y_offset: float = 14.0
    y_scale: float = 0.5

    def to_dict(self):
        return {k: (float(v) if isinstance(v, (float, np.floating)) else v)
                for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d):
        return cls(**d)

    @classmethod
    def fit(cls, z, log10_mass):
        """Offsets and scales from a training set (rounded, for a readable manifest)."""
        z = np.asarray(z, float)
        y = np.asarray(log10_mass, float)
        return cls(z_offset=round(float(np.mean(z)), 3), z_scale=round(float(np.std(z)), 3),
                   y_offset=round(float(np.mean(y)), 3), y_scale=round(float(np.std(y)), 3))

    def images(self, ebi):
        """(N, ny, nx, nb) counts -> (N, nb, ny, nx) float32 network input.

        The result is a view of a channel-last array (torch's ``channels_last`` memory
        layout), which is what the CPU convolutions are fastest on.
        """
        if self.image_transform != "log1p":
            raise ValueError(f"unknown image transform {self.image_transform!r}")
        x = np.array(ebi, dtype=np.float32)  # a copy: the caller's array is not touched
        if x.ndim != 4:
            raise ValueError(f"EBIs must have shape (N, ny, nx, nbands); got {x.shape}")
        np.clip(x, 0.0, None, out=x)
        np.log1p(x, out=x)
        x *= np.float32(1.0 / self.image_scale)
        return np.moveaxis(x, -1, 1)

    def redshift(self, z):
        return ((np.asarray(z, float) - self.z_offset) / self.z_scale).astype(np.float32)

    def target(self, log10_mass):
        return ((np.asarray(log10_mass, float) - self.y_offset) / self.y_scale).astype(np.float32)

    def to_dex(self, mu_t, sigma_t):
        return (self.y_offset + self.y_scale * np.asarray(mu_t, float),
                self.y_scale * np.asarray(sigma_t, float))


def write_dataset(path, ebi, catalog, ebi_parameters=None, selection="", source="",
                  overwrite=False):
    """Write a training data set (format in the module docstring) atomically.

    Parameters
    ----------
    path : str
    ebi : ndarray, shape (N, ny, nx, nbands)
    catalog : `~astropy.table.Table`, N rows
    ebi_parameters : dict or EBIParameters, optional
    selection, source : str
    overwrite : bool
    """
    import yaml

    ebi = np.asarray(ebi, dtype=np.float32)
    if ebi.ndim != 4 or len(ebi) != len(catalog):
        raise ValueError(f"ebi must be (N, ny, nx, nbands) with N = {len(catalog)} catalogue "
                         f"rows; got {ebi.shape}")
    if ebi_parameters is not None and hasattr(ebi_parameters, "to_dict"):
        ebi_parameters = ebi_parameters.to_dict()
    attrs = {"format": FORMAT, "format_version": FORMAT_VERSION,
             "ebi_parameters": yaml.safe_dump(_plain(ebi_parameters), sort_keys=True),
             "selection": selection, "source": str(source),
             "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
                 timespec="seconds")}
    write_image_file(path, ebi, catalog, attrs, overwrite=overwrite)


def _plain(obj):
    """Nested tuples/numpy scalars -> plain lists/floats for YAML."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, str) and type(obj) is not str:  # e.g. torch.__version__
        return str(obj)
    if isinstance(obj, float) and type(obj) is not float:
        return float(obj)
    return obj


def read_dataset(path, catalog=None, images_key=None, mmap=False):
    """Read a training data set.

    Parameters
    ----------
    path : str
        HDF5 file in this module's format, or the teaching layout (``gsm_3dImgs``).
    catalog : `~astropy.table.Table` or str, optional
        Catalogue to use when the file has none (teaching layout); rows must match.
    images_key : str, optional
        Dataset key of the images (default: ``ebi`` or ``gsm_3dImgs``).
    mmap : bool
        Keep the images on disk (an ``h5py.Dataset``) instead of loading them.

    Returns
    -------
    `TrainingData`
    """
    require("h5py", feature="CNN data sets (HDF5)")
    import h5py
    import yaml
    from astropy.table import Table

    if not os.path.exists(path):
        raise FileNotFoundError(f"training data set {path!r} does not exist")
    f = h5py.File(path, "r")
    try:
        keys = (images_key,) if images_key else _IMAGE_KEYS
        key = next((k for k in keys if k in f), None)
        if key is None:
            raise KeyError(f"{path}: no image data set (looked for {keys}); keys: {list(f)}")
        ebi = f[key] if mmap else f[key][...].astype(np.float32, copy=False)
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        has_catalog = "catalog" in f
    finally:
        if not mmap:
            f.close()
    if catalog is None:
        if not has_catalog:
            raise KeyError(f"{path}: no 'catalog' table; pass catalog=")
        catalog = Table.read(path, format="hdf5", path="catalog")
    elif isinstance(catalog, str):
        catalog = Table.read(catalog)
    if len(catalog) != len(ebi):
        raise ValueError(f"{path}: {len(ebi)} images but {len(catalog)} catalogue rows")
    params = attrs.get("ebi_parameters")
    params = yaml.safe_load(params) if params else None
    return TrainingData(ebi, catalog, params, attrs, path)


def split_by_cluster(keys, fractions=(0.70, 0.15, 0.15), seed=0):
    """Split rows into train/validation/test by cluster, never by image.

    Parameters
    ----------
    keys : array of str
        Cluster key of each row (`TrainingData.group_keys`).
    fractions : three floats summing to 1
    seed : int

    Returns
    -------
    train, val, test : arrays of row indices (sorted)
    """
    fractions = np.asarray(fractions, float)
    if fractions.shape != (3,) or abs(fractions.sum() - 1) > 1e-6 or (fractions < 0).any():
        raise ValueError("fractions must be three non-negative numbers summing to 1; got "
                         f"{fractions}")
    keys = np.asarray(keys).astype(str)
    unique, inverse = np.unique(keys, return_inverse=True)
    order = np.random.default_rng(seed).permutation(len(unique))
    n = len(unique)
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    which = np.empty(n, dtype=np.int8)
    which[order[:n_train]] = 0
    which[order[n_train:n_train + n_val]] = 1
    which[order[n_train + n_val:]] = 2
    row_set = which[inverse]
    return tuple(np.flatnonzero(row_set == k) for k in range(3))


def uniform_mass_weights(log10_mass, bin_width=0.1, max_weight=20.0, reference=None,
                         power=1.0):
    """Sample weights that make the effective distribution of log10 M uniform.

    Weight of a sample = (number of training samples in its ``bin_width``-dex bin)
    to the power ``-power``, normalised to mean 1 over ``reference`` (default the samples
    themselves) and capped at ``max_weight`` (so that a handful of extreme-mass clusters
    cannot dominate). ``power=1`` flattens the mass distribution (seed 000, sect. 4);
    ``0 < power < 1`` flattens it part of the way (the effective distribution is the
    training one to the power ``1 - power``); ``power=0`` gives equal weights.

    Parameters
    ----------
    log10_mass : array
        Masses to weight.
    bin_width : float
        Histogram bin width [dex].
    max_weight : float
        Cap on a weight (in units of the mean weight).
    reference : array, optional
        Masses whose histogram defines the weights (the training set); default
        ``log10_mass``.
    power : float
        Exponent of the inverse bin count, in [0, 1].
    """
    if not 0.0 <= power <= 1.0:
        raise ValueError(f"power must be in [0, 1], got {power}")
    ref = np.asarray(log10_mass if reference is None else reference, float)
    lo = np.floor(ref.min() / bin_width) * bin_width
    edges = np.arange(lo, ref.max() + 1.5 * bin_width, bin_width)
    counts, _ = np.histogram(ref, edges)
    def raw(y):
        idx = np.clip(np.digitize(y, edges) - 1, 0, len(counts) - 1)
        return np.maximum(counts[idx], 1).astype(float) ** -power
    norm = raw(ref).mean()
    w = raw(np.asarray(log10_mass, float)) / norm
    return np.minimum(w, max_weight).astype(np.float32)


def file_sha256(path, block=1 << 20):
    """SHA-256 hex digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(block)
            if not chunk:
                break
            h.update(chunk)
    return h.hexdigest()


#: Units of `prepare_splits`: what one key of the split is.
SPLIT_UNITS = {"cluster": "cluster (realisation + cluster id)",
               "field": "field (realisation: every cluster of one simulated field together)"}


def prepare_splits(data, selection, split_seed=0, fractions=(0.70, 0.15, 0.15),
                   split_by="cluster"):
    """Apply the selection and split by cluster or by field.

    Parameters
    ----------
    data : `TrainingData`
    selection : str
    split_seed : int
    fractions : three floats summing to 1
    split_by : {'cluster', 'field'}
        ``'cluster'``: the images of one cluster stay together; ``'field'``: all the
        clusters of one realisation (a simulated field of ``astro-clustermass dataset
        --mode field``) stay together, so that no test cluster is seen at the edge of a
        training cluster's image. A field split needs at least three realisations.

    Returns
    -------
    splits : dict name -> `TrainingData` (train, val, test)
    info : dict (counts, selection, seed, unit) for the manifest
    """
    if split_by not in SPLIT_UNITS:
        raise ValueError(f"split_by must be one of {sorted(SPLIT_UNITS)}, not {split_by!r}")
    mask = apply_selection(data.catalog, selection)
    good = np.isfinite(data.log10_mass) & np.isfinite(data.z)
    sel = data.subset(np.flatnonzero(mask & good))
    if split_by == "field":
        rname = _first(sel.catalog, _REAL_NAMES)
        if rname is None:
            raise ValueError(f"a split by field needs a realisation column {_REAL_NAMES}")
        keys = np.asarray(sel.catalog[rname]).astype(str)
        if len(np.unique(keys)) < 3:
            raise ValueError(f"a split by field needs at least 3 fields, the data set has "
                             f"{len(np.unique(keys))}")
    else:
        keys = sel.group_keys()
    tr, va, te = split_by_cluster(keys, fractions, seed=split_seed)
    splits = {"train": sel.subset(tr), "val": sel.subset(va), "test": sel.subset(te)}
    info = {"n_rows": int(len(data)), "selection": selection, "n_selected": int(len(sel)),
            "split_seed": int(split_seed), "split_fractions": [float(f) for f in fractions],
            "split_by": SPLIT_UNITS[split_by], "split_unit": split_by,
            "n_train": int(len(tr)), "n_val": int(len(va)), "n_test": int(len(te))}
    return splits, info
