"""The FITS writer that converts a table in slices of rows writes astropy's file."""

import warnings

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.table import Column, MaskedColumn, QTable, Table

from astro_clustermass.esass import _meta_for_fits, read_catalog, write_table
from astro_clustermass.io import fits_stream
from astro_clustermass.io.fits_stream import write_fits_table

N = 23


def _table(cls, masked_rows=(4, 9, 12, 20)):
    """Every kind of column the package writes, masked values in ``masked_rows``."""
    rng = np.random.default_rng(0)
    rows = np.arange(N)
    masked = np.isin(rows, masked_rows)
    table = cls()
    table["M500c"] = MaskedColumn(rng.uniform(1e14, 1e15, N), mask=masked, unit=u.Msun)
    table["count"] = MaskedColumn(rows, mask=masked, fill_value=-99)  # TNULL = -99
    table["short"] = MaskedColumn(rows.astype(np.int16), mask=masked)  # TNULL default
    table["plain_int"] = rows.astype(np.int32)
    table["text"] = ["x" * (i % 5) for i in rows]
    table["text_masked"] = MaskedColumn(["ab" * (i % 3) for i in rows], mask=masked)
    table["flag"] = np.array([b"reason %d" % i for i in rows])
    table["ok"] = rows % 2 == 0
    table["ok_masked"] = MaskedColumn(rows % 3 == 0, mask=masked)
    table["image"] = rng.normal(size=(N, 2, 3))
    table["pair"] = MaskedColumn(rng.normal(size=(N, 2)), mask=np.zeros((N, 2), bool))
    table["pair"].mask[masked, 1] = True
    table["shown"] = Column(rng.normal(size=N), format="%.3f", description="TDISP, YAML")
    table["log10M500c"] = Column(rng.normal(14, 0.3, N), unit="dex")
    table.meta.update({"TELESCOP": "eROSITA", "comments": ["one", "two"], "HISTORY": ["h"]})
    table.meta["astro_clustermass"] = {"lx-chiu22": {"name": "lx-chiu22", "rows": 7,
                                                     "reason": "outside the range"}}
    return _meta_for_fits(table)


def _astropy_bytes(table, path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table.write(path, format="fits")
    return path.read_bytes(), sorted({str(w.message) for w in caught})


def _chunked_bytes(table, path, chunk_rows):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        write_fits_table(table, path, chunk_rows=chunk_rows)
    return path.read_bytes(), sorted({str(w.message) for w in caught})


@pytest.mark.parametrize("cls", [Table, QTable])
@pytest.mark.parametrize("masked_rows", [(4, 9, 12, 20), (N - 1,), ()])
@pytest.mark.parametrize("chunk_rows", [1, 3, 7, N - 1])
def test_slices_give_the_file_astropy_writes(tmp_path, cls, masked_rows, chunk_rows):
    table = _table(cls, masked_rows)
    expected, expected_warnings = _astropy_bytes(table, tmp_path / "astropy.fits")
    got, got_warnings = _chunked_bytes(table, tmp_path / "chunked.fits", chunk_rows)
    assert got == expected  # header and data, byte for byte
    assert got_warnings == expected_warnings  # each once, as astropy gives them
    header = fits.getheader(tmp_path / "chunked.fits", 1)
    assert header["NAXIS2"] == N
    assert header["TNULL2"] == -99  # the integer columns' null values are kept
    assert "ACM_META" in header


def test_the_table_is_not_modified(tmp_path):
    table = _table(QTable)
    before = table.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 'dex' is no FITS unit
        write_fits_table(table, tmp_path / "out.fits", chunk_rows=5)
    assert table.meta == before.meta
    for name in table.colnames:
        assert np.array_equal(table[name], before[name])
        assert np.array_equal(np.ma.getmaskarray(table[name]),
                              np.ma.getmaskarray(before[name]))


def test_write_table_streams_and_round_trips(tmp_path, monkeypatch):
    monkeypatch.setattr(fits_stream, "CHUNK_BYTES", 200)  # a few rows per slice
    calls = []
    original = fits_stream._data_bytes
    monkeypatch.setattr(fits_stream, "_data_bytes",
                        lambda rows, **kw: calls.append(len(rows)) or original(rows, **kw))
    table = _table(QTable)
    write_table(table, tmp_path / "streamed.fits")
    assert len(calls) > 3  # it did write in slices
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table.write(tmp_path / "astropy.fits")
    assert (tmp_path / "streamed.fits").read_bytes() == (tmp_path / "astropy.fits").read_bytes()
    back = read_catalog(tmp_path / "streamed.fits")
    assert back.meta["astro_clustermass"]["lx-chiu22"]["rows"] == 7
    assert np.array_equal(back["M500c"].mask, table["M500c"].mask)


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, OSError])
def test_interrupted_stream_leaves_the_old_output(tmp_path, monkeypatch, interrupt):
    monkeypatch.setattr(fits_stream, "CHUNK_BYTES", 200)
    original = fits_stream._data_bytes
    calls = []

    def failing(rows, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise interrupt("stopped half-way")
        return original(rows, **kwargs)

    monkeypatch.setattr(fits_stream, "_data_bytes", failing)
    out = tmp_path / "out.fits"
    out.write_bytes(b"old")
    with pytest.raises(interrupt):
        write_table(_table(Table), out, overwrite=True)
    assert out.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.fits"]  # no temp file


def test_what_cannot_stream_is_written_by_astropy(tmp_path):
    table = _table(Table)
    table["ragged"] = Column([np.arange(i % 3) for i in range(N)], dtype=object)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_fits_table(table, tmp_path / "a.fits", chunk_rows=4)
        table.write(tmp_path / "b.fits")
    assert (tmp_path / "a.fits").read_bytes() == (tmp_path / "b.fits").read_bytes()
    write_table(_table(Table), tmp_path / "c.fits.gz")  # compressed: astropy's writer
    assert len(read_catalog(tmp_path / "c.fits.gz")) == N
