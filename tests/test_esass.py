import gzip
import logging

import numpy as np
import pytest
from astropy import units as u
from astropy.table import QTable

from astro_clustermass.esass import CatalogReadError, read_catalog, write_table

ERMLDET = "edr_300003_ermldet_MaxLikSourceList.fits.gz"
CATPREP = "edr_300003_catprep_SourceCatalog.fits.gz"


def test_ermldet_flattened_to_one_row_per_source(data_dir):
    table = read_catalog(data_dir / ERMLDET)
    assert len(table) == 481  # 2886 rows = 481 sources x (summary + 5 inst/band rows)
    assert table.meta["esass_layout"] == "ermldet"
    assert table.meta["bands"][1] == [0.2, 0.5] and table.meta["bands"][4] == [2.2, 10.0]
    assert table["ML_RATE"].unit == u.ct / u.s
    assert "ML_RATE_3" in table.colnames and "ID_BAND" not in table.colnames
    # the summary rate is the sum of the band rates (eSASS ID_BAND=0 convention)
    total = sum(table[f"ML_RATE_{b}"] for b in (1, 2, 3, 4))
    np.testing.assert_allclose(total.value, table["ML_RATE"].value, rtol=1e-4)


def test_catprep_units_repaired_and_bands_read(data_dir, caplog):
    with caplog.at_level(logging.INFO, logger="astro_clustermass"):
        table = read_catalog(data_dir / CATPREP)
    assert len(table) == 481
    assert table.meta["esass_layout"] == "catprep"
    # catprep writes 'arcsec' on likelihoods; they must come back as plain numbers
    assert not isinstance(table["EXT_LIKE"], u.Quantity) or table["EXT_LIKE"].unit in (
        None, u.dimensionless_unscaled)
    assert "DET_LIKE_0 [arcsec]" in caplog.text
    assert "count_rate" not in table.colnames  # no 0.2-2.3 keV band in this field
    assert "no eSASS band is 0.2-2.3 keV" in caplog.text


def test_both_layouts_agree_on_rates(data_dir, caplog):
    a = read_catalog(data_dir / ERMLDET, rate_band=(1, 2, 3))
    b = read_catalog(data_dir / CATPREP, rate_band=(1, 2, 3))
    assert "covers 0.2-2.2 keV, not the canonical" in caplog.text
    by_id = {sid: i for i, sid in enumerate(b["ID_SRC"])}
    idx = [by_id[s] for s in a["ID_SRC"]]
    np.testing.assert_allclose(a["count_rate"].value, b["count_rate"].value[idx], rtol=1e-5)


def test_unknown_band_is_an_error(data_dir):
    with pytest.raises(CatalogReadError, match="ML_RATE_9"):
        read_catalog(data_dir / CATPREP, rate_band=9)


@pytest.mark.parametrize("content",
                         [b"", b"SIMPLE  =                    T", b"not a fits file" * 10])
def test_corrupt_files_give_clear_errors(tmp_path, content):
    path = tmp_path / "bad.fits"
    path.write_bytes(content)
    with pytest.raises(CatalogReadError, match="bad.fits"):
        read_catalog(path)


def test_truncated_file(tmp_path, data_dir):
    raw = gzip.decompress((data_dir / CATPREP).read_bytes())
    path = tmp_path / "truncated.fits"
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CatalogReadError, match="truncated.fits"):
        read_catalog(path)


def test_missing_file():
    with pytest.raises(CatalogReadError, match="does not exist"):
        read_catalog("/nonexistent/clusters.fits")


def test_write_is_atomic_and_refuses_overwrite(tmp_path):
    table = QTable({"z": [0.1, 0.2]})
    path = write_table(table, tmp_path / "out.fits")
    with pytest.raises(FileExistsError):
        write_table(table, path)

    class Boom(Exception):
        pass

    class BadTable(QTable):
        def write(self, *args, **kwargs):
            with open(args[0], "wb") as fh:
                fh.write(b"half")
            raise Boom()

    before = path.read_bytes()
    with pytest.raises(Boom):
        write_table(BadTable({"z": [1.0]}), path, overwrite=True)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.fits"]
