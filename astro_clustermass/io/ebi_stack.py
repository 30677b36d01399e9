"""Stacks of energy-band images on disk (HDF5), and the seed's teaching layout.

`write_ebi_stack` / `read_ebi_stack` hold the EBIs of many clusters with their
`~astro_clustermass.ebi.EBIParameters` and catalogue (the layout of the CNN training
data sets too); `read_teaching_pickle` / `convert_teaching_pickle` read the original
teaching data set (pandas pickles, key ``gsm_3dImgs``) once, into that safe format.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from ..ebi import EBIParameters
from ..utils.optional import require
from .atomic import atomic_write

__all__ = ["EBIStack", "write_ebi_stack", "read_ebi_stack", "read_teaching_pickle",
           "convert_teaching_pickle", "write_image_file", "STACK_FORMAT",
           "STACK_FORMAT_VERSION"]

STACK_FORMAT = "astro_clustermass-ebi-stack"
STACK_FORMAT_VERSION = 1


@dataclasses.dataclass
class EBIStack:
    """EBIs of many clusters with their parameters and catalogue.

    Attributes
    ----------
    images : ndarray (N, ny, nx, nbands) float32 (or an h5py data set with ``mmap``)
    params : EBIParameters or None
        None when the source does not record them.
    catalog : `~astropy.table.Table` or None
    """

    images: object
    params: EBIParameters | None = None
    catalog: object = None

    def __len__(self):
        return len(self.images)


def write_ebi_stack(path, images, params, catalog=None, overwrite=False):
    """Write EBIs (and their catalogue) to HDF5 atomically.

    Layout: data set ``ebi`` (N, ny, nx, nbands) float32 (gzip, chunks of 64 cubes);
    file attributes ``format`` (`STACK_FORMAT`), ``format_version``,
    ``ebi_parameters`` (YAML of `EBIParameters.to_dict`, or absent if ``params`` is
    None), ``band_edges_keV``, ``axes`` = ``"N, y, x, band"``; optional table
    ``catalog`` (astropy HDF5 with metadata), one row per image. The same layout as the
    CNN training data sets (`astro_clustermass.cnn.dataset`), which need a catalogue.
    """
    import yaml

    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4:
        raise ValueError(f"images must be (N, ny, nx, nbands); got shape {images.shape}")
    p = None if params is None else EBIParameters.from_dict(params)
    if p is not None and images.shape[1:] != p.image_shape:
        raise ValueError(f"images have shape {images.shape[1:]} per cluster but the parameters "
                         f"give {p.image_shape}")
    if catalog is not None and len(catalog) != len(images):
        raise ValueError(f"{len(images)} images but {len(catalog)} catalogue rows")
    path = os.fspath(path)

    attrs = {"format": STACK_FORMAT, "format_version": STACK_FORMAT_VERSION,
             "axes": "N, y, x, band"}
    if p is not None:
        attrs["ebi_parameters"] = yaml.safe_dump(p.to_dict(), sort_keys=True)
        attrs["band_edges_keV"] = p.band_edges.value
    write_image_file(path, images, catalog, attrs, overwrite=overwrite)


def write_image_file(path, images, catalog=None, attrs=None, overwrite=False):
    """Write images and their catalogue to HDF5 atomically (EBI stacks, CNN data sets).

    Parameters
    ----------
    path : path-like
    images : ndarray (N, ny, nx, nbands) float32
        Data set ``ebi`` (gzip level 1 with shuffle, chunks of up to 64 cubes).
    catalog : `~astropy.table.Table`, optional
        Table ``catalog`` (astropy HDF5 with serialised metadata), one row per image.
    attrs : dict, optional
        Root attributes (``format``, ``format_version``, ...).
    overwrite : bool
    """
    require("h5py", feature="EBI stacks (HDF5)")
    import h5py
    from astropy.table import Table

    def write(tmp):
        if catalog is not None:
            Table(catalog).write(tmp, format="hdf5", path="catalog", serialize_meta=True,
                                 overwrite=True)
        with h5py.File(tmp, "a" if catalog is not None else "w") as f:
            chunk = (min(64, max(1, len(images))), *images.shape[1:])
            f.create_dataset("ebi", data=images, chunks=chunk, compression="gzip",
                             compression_opts=1, shuffle=True)
            for key, value in (attrs or {}).items():
                f.attrs[key] = value

    atomic_write(path, write, overwrite=overwrite, suffix=".h5")


def read_ebi_stack(path, mmap=False):
    """Read EBIs written by `write_ebi_stack` (or a CNN training data set).

    Parameters
    ----------
    path : str
    mmap : bool
        Leave the images in the file (an open h5py data set) instead of loading them.

    Returns
    -------
    EBIStack
    """
    require("h5py", feature="EBI stacks (HDF5)")
    import h5py
    import yaml
    from astropy.table import Table

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"EBI stack {path!r} does not exist")
    f = h5py.File(path, "r")
    try:
        if "ebi" not in f:
            raise KeyError(f"{path}: no 'ebi' data set (keys: {list(f)}); for the teaching "
                           "layout use read_teaching_pickle / convert_teaching_pickle")
        raw = f.attrs.get("ebi_parameters", None)
        if isinstance(raw, bytes):
            raw = raw.decode()
        params = None
        if raw:
            try:
                d = yaml.safe_load(raw) if isinstance(raw, str) else raw
                params = None if d is None else EBIParameters.from_dict(d)
            except (yaml.YAMLError, TypeError, ValueError, AttributeError) as exc:
                # e.g. a !!python tag: refused by safe_load, said with the file's name
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise ValueError(f"EBI stack {path!r}: its ebi_parameters attribute cannot "
                                 f"be read safely ({type(exc).__name__}: {first})") from None
        images = f["ebi"] if mmap else f["ebi"][...].astype(np.float32, copy=False)
        has_cat = "catalog" in f
    except BaseException:
        f.close()
        raise
    if not mmap:
        f.close()
    catalog = Table.read(path, path="catalog") if has_cat else None
    return EBIStack(images=images, params=params, catalog=catalog)


# -- the original teaching layout (pandas pickles) -------------------------------------------
def read_teaching_pickle(path, allow_pickle=False, key="gsm_3dImgs"):
    """Read the seed's teaching layout: EBIs under ``gsm_3dImgs`` plus a catalogue.

    The files are pandas pickles. **Unpickling runs code from the file**: only read
    files you trust, and say so with ``allow_pickle=True``; then convert them once to
    a safe format with `convert_teaching_pickle`.

    Accepted contents: a pandas DataFrame with a column ``gsm_3dImgs`` (one (50, 50,
    10) array per row) and catalogue columns (M500c, z, ...), or a dict with
    ``gsm_3dImgs`` (array (N, 50, 50, 10)) and catalogue entries (arrays of length N
    or a DataFrame / dict of columns).

    Returns
    -------
    EBIStack
        ``params`` is None (the file does not record them).
    """
    if not allow_pickle:
        raise ValueError(
            f"{path}: reading a pickle executes code stored in the file; pass "
            "allow_pickle=True only for files you trust, then convert them to HDF5 with "
            "convert_teaching_pickle (read_ebi_stack reads that without pickles)")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"teaching pickle {path!r} does not exist")
    try:
        import pandas as pd
    except ImportError:
        pd = None
    if pd is not None:
        obj = pd.read_pickle(path)
    else:
        import pickle

        try:
            with open(path, "rb") as fh:
                obj = pickle.load(fh)  # noqa: S301 - explicit opt-in above
        except ModuleNotFoundError as exc:
            raise ImportError(f"{path} holds pandas objects; reading it needs pandas, which "
                              f"is not installed ({exc})") from exc
    return _teaching_from_object(obj, key, path)


def _teaching_from_object(obj, key, path):
    from astropy.table import Table

    if hasattr(obj, "columns") and hasattr(obj, "to_dict"):  # a DataFrame
        cols = {str(c): obj[c].to_numpy() for c in obj.columns}
    elif isinstance(obj, dict):
        cols = dict(obj)
    else:
        raise TypeError(f"{path}: expected a DataFrame or dict with {key!r}; got "
                        f"{type(obj).__name__}")
    if key not in cols:
        raise KeyError(f"{path}: no {key!r} entry (keys: {sorted(map(str, cols))})")
    raw = cols.pop(key)
    if isinstance(raw, np.ndarray) and raw.dtype != object:
        images = np.asarray(raw, np.float32)
    else:
        images = np.stack([np.asarray(x, np.float32) for x in raw])
    if images.ndim != 4:
        raise ValueError(f"{path}: {key} has shape {images.shape}; expected (N, ny, nx, nbands)")
    n = len(images)
    table = Table()
    for name, val in cols.items():
        if hasattr(val, "columns") and hasattr(val, "to_dict"):
            for c in val.columns:
                table[str(c)] = val[c].to_numpy()
            continue
        if isinstance(val, dict):
            for c, v in val.items():
                table[str(c)] = np.asarray(v)
            continue
        arr = np.asarray(val)
        if arr.ndim >= 1 and len(arr) == n:
            table[str(name)] = arr
        else:
            table.meta[str(name)] = val if np.ndim(val) == 0 else arr.tolist()
    if len(table.colnames) and len(table) != n:
        raise ValueError(f"{path}: {n} images but {len(table)} catalogue rows")
    return EBIStack(images=images, params=None, catalog=table if table.colnames else None)


def convert_teaching_pickle(src, dst, allow_pickle=False, params=None, overwrite=False):
    """Convert a teaching-layout pickle to an HDF5 EBI stack (`write_ebi_stack`).

    Parameters
    ----------
    src, dst : str
    allow_pickle : bool
        Must be True (see `read_teaching_pickle`).
    params : EBIParameters or dict, optional
        The parameters the images were made with, if known (the file does not say);
        None records none.
    """
    stack = read_teaching_pickle(src, allow_pickle=allow_pickle)
    write_ebi_stack(dst, stack.images, params, catalog=stack.catalog, overwrite=overwrite)
    return dst
