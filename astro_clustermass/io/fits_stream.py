"""Write a large table as a FITS binary table a slice of rows at a time.

astropy's FITS writer (``Table.write``) converts the whole table at once: into a
structured array, its filled copy and a ``FITS_rec`` (``table_to_hdu``), a few times the
size of the file in memory. `write_fits_table` streams instead: astropy writes a one-row
table (its header, with the table's metadata and column keywords, is the output's, with
``NAXIS2`` set to the number of rows) and then each slice of rows, whose data bytes are
copied into the output through `~astropy.io.fits.StreamingHDU`. Every byte of the file
is one that astropy wrote (the tests compare the files byte for byte): the file is
the one ``Table.write`` writes, with the memory of one slice (about `CHUNK_BYTES` of
rows) instead of a few copies of the table.

Tables astropy cannot write slice by slice this way (variable-length array or
``object`` columns, mixins other than `~astropy.units.Quantity`, compressed or
appended output) are written by ``Table.write`` as they are.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from astropy.io import fits
from astropy.table import Column
from astropy.units import Quantity

__all__ = ["CHUNK_BYTES", "write_fits_table"]

#: Rows are converted and written in slices of about this many bytes of FITS data.
CHUNK_BYTES = 32 * 2**20

_FITS_SUFFIXES = (".fits", ".fit", ".fts")


def _row_bytes(table):
    """The bytes of one row in memory (an upper bound of the FITS row: text is UCS-4)."""
    return sum(col.dtype.itemsize * int(np.prod(col.shape[1:], dtype=int))
               for col in table.itercols())


def _streamable(table, path, kwargs):
    """Whether ``table`` can be written slice by slice to ``path``."""
    return (str(path).lower().endswith(_FITS_SUFFIXES) and not kwargs.get("append")
            and all(isinstance(col, (Column, Quantity)) and col.dtype.kind != "O"
                    for col in table.itercols()))


def _first_masked_row(table):
    """The first row with a masked value in any column (0 if none).

    astropy fills masked values and writes ``TNULLn`` only for a table that has masked
    values (or masked columns), so the one-row table whose header is the output's must
    have one whenever the whole table has."""
    first = len(table)
    for col in table.itercols():
        mask = getattr(col, "mask", None)
        if mask is None:
            continue
        rows = np.broadcast_to(mask, col.shape).reshape(len(col), -1).any(axis=1)
        if rows[:first].any():
            first = int(np.argmax(rows[:first]))
    return 0 if first == len(table) else first


def _write_to_memory(table, **kwargs):
    buffer = io.BytesIO()
    table.write(buffer, format="fits", **kwargs)
    return buffer


def _output_header(table, **kwargs):
    """The header astropy writes for ``table``: that of one of its rows, all rows long."""
    row = _first_masked_row(table)
    written = _write_to_memory(table[row:row + 1], **kwargs)
    written.seek(0)
    with fits.open(written) as hdus:
        header = hdus[1].header.copy()
    header["NAXIS2"] = len(table)
    return header


def _data_bytes(rows, **kwargs):
    """The bytes of the FITS data of ``rows`` (a table), as astropy writes them."""
    rows = rows.copy(copy_data=False)
    rows.meta = {}  # the header is written once; a slice's data does not depend on it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # those of the header were given once already
        written = _write_to_memory(rows, **kwargs).getvalue()
    with fits.open(io.BytesIO(written)) as hdus:
        offset = hdus[1].fileinfo()["datLoc"]
        size = hdus[1].header["NAXIS1"] * hdus[1].header["NAXIS2"]
    return np.frombuffer(written, dtype=np.uint8, count=size, offset=offset)


def write_fits_table(table, path, chunk_rows=None, **kwargs):
    """Write ``table`` to the new FITS file ``path`` as ``table.write(path)`` does.

    Parameters
    ----------
    table : `~astropy.table.Table` or `~astropy.table.QTable`
        The table; it is not modified.
    path : path-like
        A file that does not exist or is empty (e.g. a temporary file of
        `~astro_clustermass.io.atomic.atomic_path`).
    chunk_rows : int, optional
        Rows per slice. Default: as many as `CHUNK_BYTES` hold; a table that fits in one
        slice is written by ``table.write``.
    **kwargs
        Passed to ``table.write`` (e.g. ``name`` for ``EXTNAME``).
    """
    n = len(table)
    if chunk_rows is None:
        chunk_rows = max(1, CHUNK_BYTES // max(1, _row_bytes(table)))
    if n <= chunk_rows or not _streamable(table, path, kwargs):
        table.write(path, format="fits", overwrite=True, **kwargs)
        return
    header = _output_header(table, **kwargs)
    with fits.StreamingHDU(path, header) as stream:
        for start in range(0, n, chunk_rows):
            stream.write(_data_bytes(table[start:start + chunk_rows], **kwargs))
        if not stream.writecomplete:  # pragma: no cover - astropy wrote fewer rows
            raise OSError(f"writing {path!r}: the table's rows do not fill its header")
