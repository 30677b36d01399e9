"""Formats of the unified I/O registry (`astropy.io.registry`): ``Table.read``/``write``.

Registered when `astro_clustermass` is imported:

``esass`` (read, write)
    Reading: any eSASS catalogue as `~astro_clustermass.esass.read_catalog` reads it
    (``ermldet`` source lists flattened to one row per source, ``catprep`` catalogues,
    band metadata, the canonical ``count_rate``), or any other table file. Writing: FITS
    whose header also holds, as JSON in the keyword ``ACM_META``, the metadata that
    astropy's plain FITS writer cannot store (and skips with a warning): the nested
    provenance ``meta['astro_clustermass']``, ``meta['bands']``,
    ``meta['esass_layout']``. Written atomically (`astro_clustermass.io.atomic`).
``esass-ermldet``, ``esass-catprep`` (read)
    The same reader, refusing a file of the other layout.
``ebi-stack`` (read, write)
    HDF5 stacks of energy-band images (`astro_clustermass.io.ebi_stack`): one row per
    cluster, its catalogue columns plus the column ``ebi`` (one (ny, nx, nbands) cube
    per row); the EBI parameters in ``meta['ebi_parameters']``. The CNN ensemble reads
    the ``ebi`` column of such a table without further options.

No format has an identifier (a reader chosen from the file alone): an eSASS catalogue
is also a FITS file, and two formats that both claim a file make astropy refuse to
guess. Name the format::

    from astropy.table import QTable
    cat = QTable.read("edr_300003_catprep_SourceCatalog.fits.gz", format="esass-catprep")
    out.write("with_masses.fits", format="esass")

Why not plain ``QTable.read``: eSASS writes ``TNULL = -99`` on unsigned-byte columns
(``OWNER`` in ``catprep``), a null value the column cannot hold; astropy's FITS reader
raises on it. The ``esass`` reader takes the columns from the HDU one by one and ignores
such impossible null values (with an INFO message).
"""

from __future__ import annotations

import os

import numpy as np
from astropy.io import registry
from astropy.table import Table

__all__ = ["read_esass", "write_esass", "read_ebi_stack_table", "write_ebi_stack_table",
           "ESASS_FORMATS", "EBI_STACK_FORMAT"]

#: Reader formats for eSASS catalogues, and the layout each one insists on.
ESASS_FORMATS = {"esass": None, "esass-ermldet": "ermldet", "esass-catprep": "catprep"}

#: Format name of the package's HDF5 stacks of energy-band images.
EBI_STACK_FORMAT = "ebi-stack"

#: Column of the EBI cubes in a table of the ``ebi-stack`` format.
EBI_COLUMN = "ebi"


def read_esass(filename, hdu=None, rate_band=None, layout=None):
    """Read an eSASS (or any) catalogue for ``Table.read(..., format='esass')``.

    Parameters
    ----------
    filename : str or path-like
        The file (FITS, gzipped FITS, ECSV, HDF5, VOTable).
    hdu : int or str, optional
        FITS extension; default ``SRCLIST``/``CATSRCL``, else the first table.
    rate_band : int or sequence of int, optional
        eSASS band(s) whose ``ML_RATE`` is the canonical ``count_rate`` (see
        `~astro_clustermass.esass.read_catalog`).
    layout : {'ermldet', 'catprep'}, optional
        Refuse a file of another layout (the formats ``esass-ermldet`` and
        ``esass-catprep``).

    Returns
    -------
    `~astropy.table.Table`
        astropy turns it into a `~astropy.table.QTable` for ``QTable.read``.
    """
    from ..esass import CatalogReadError, read_catalog

    table = read_catalog(filename, hdu=hdu, rate_band=rate_band, qtable=False)
    found = table.meta.get("esass_layout")
    if layout is not None and found != layout:
        raise CatalogReadError(
            f"{os.fspath(filename)!r} is not an eSASS {layout} catalogue (its layout: "
            f"{found or 'not eSASS'}); read it with format='esass'")
    return table


def _reader(layout):
    def read(filename, **kwargs):
        return read_esass(filename, layout=layout, **kwargs)

    read.__doc__ = read_esass.__doc__
    return read


def write_esass(table, filename, overwrite=False):
    """Write ``table`` as FITS that keeps all of its metadata (``format='esass'``).

    Nested metadata goes, as JSON, into the header keyword ``ACM_META`` and comes back
    with ``Table.read(..., format='esass')`` (or `~astro_clustermass.esass.read_catalog`).
    Written to a temporary file and renamed (`~astro_clustermass.esass.write_table`).
    """
    from ..esass import write_table

    name = os.fspath(filename)
    if not name.lower().endswith((".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")):
        raise ValueError(f"format='esass' writes FITS: give {name!r} a .fits name")
    write_table(table, name, overwrite=overwrite)


def read_ebi_stack_table(filename, column=EBI_COLUMN):
    """An EBI stack as a table (``Table.read(..., format='ebi-stack')``).

    Parameters
    ----------
    filename : str or path-like
        HDF5 file written by `~astro_clustermass.io.ebi_stack.write_ebi_stack`.
    column : str
        Name of the image column.

    Returns
    -------
    `~astropy.table.Table`
        The stack's catalogue (if it has one) with the cubes in ``column``, and
        ``meta['ebi_parameters']`` (a dict, or None when the file does not record them).
    """
    from .ebi_stack import read_ebi_stack

    stack = read_ebi_stack(os.fspath(filename))
    table = Table(stack.catalog, copy=False) if stack.catalog is not None else Table()
    if column in table.colnames:
        raise ValueError(f"{os.fspath(filename)!r}: its catalogue already has a column "
                         f"{column!r}; read the cubes into another with column=")
    table[column] = np.asarray(stack.images)
    table[column].info.description = "energy-band image, axes (y, x, band), counts"
    table.meta["ebi_parameters"] = (None if stack.params is None
                                    else stack.params.to_dict())
    return table


def write_ebi_stack_table(table, filename, overwrite=False, column=EBI_COLUMN):
    """Write a table with a column of EBI cubes as an EBI stack (``format='ebi-stack'``).

    The cubes of ``column`` become the stack's images, the other columns its
    catalogue, ``meta['ebi_parameters']`` its EBI parameters (checked against the
    cubes' shape).
    """
    from .ebi_stack import write_ebi_stack

    if column not in table.colnames:
        raise ValueError(f"format='ebi-stack' writes the cubes of column {column!r}; the "
                         f"table has {table.colnames}")
    images = np.asarray(getattr(table[column], "value", table[column]))
    catalog = Table(table, copy=False)
    catalog.remove_column(column)
    params = catalog.meta.pop("ebi_parameters", None)
    write_ebi_stack(filename, images, params, catalog=catalog if catalog.colnames else None,
                    overwrite=overwrite)


def register():
    """Register the formats (once; done when `astro_clustermass` is imported)."""
    if EBI_STACK_FORMAT in registry.get_formats(Table)["Format"]:
        return
    for name, layout in ESASS_FORMATS.items():
        registry.register_reader(name, Table, _reader(layout))
    registry.register_writer("esass", Table, write_esass)
    registry.register_reader(EBI_STACK_FORMAT, Table, read_ebi_stack_table)
    registry.register_writer(EBI_STACK_FORMAT, Table, write_ebi_stack_table)


register()
