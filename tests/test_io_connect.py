"""The astropy.io.registry formats: eSASS catalogues and EBI stacks (issue 20)."""

import os
import stat
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.table import QTable, Table

import astro_clustermass as acm
from astro_clustermass.esass import CatalogReadError, read_catalog, write_table
from astro_clustermass.utils.exceptions import InputDataWarning

DATA = Path(__file__).parent / "data"
REAL = Path("/work/shared/data/erosita")
CATPREP = "edr_300003_catprep_SourceCatalog.fits.gz"
ERMLDET = "edr_300003_ermldet_MaxLikSourceList.fits.gz"
# The trimmed copies in tests/data, and the originals where this machine has them.
FILES = [DATA / CATPREP, DATA / ERMLDET] + [REAL / f for f in (CATPREP, ERMLDET)
                                            if (REAL / f).exists()]


def _read(path, fmt):
    # Both files hold bands 0.2-0.5-1.0-2.2 keV: count_rate is their sum, with a warning.
    with pytest.warns(InputDataWarning, match="covers 0.2-2.2 keV"):
        return QTable.read(path, format=fmt)


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name[11:18]}")
def test_esass_formats_read_the_real_files(path):
    layout = "catprep" if "catprep" in path.name else "ermldet"
    table = _read(path, f"esass-{layout}")
    assert isinstance(table, QTable) and len(table) == 481
    assert table.meta["esass_layout"] == layout
    assert table.meta["bands"][3] == [1.0, 2.2]
    assert table["count_rate"].unit == u.ct / u.s
    # the same table as read_catalog's, and as the generic 'esass' format's
    with pytest.warns(InputDataWarning):
        direct = read_catalog(path)
    assert table.colnames == direct.colnames
    assert np.array_equal(table["count_rate"], direct["count_rate"])
    assert _read(path, "esass").colnames == table.colnames
    # no FITS table-structure keywords left in meta (writing them back warns per keyword)
    assert not [k for k in table.meta if k[:5] in ("TTYPE", "TFORM", "TNULL", "TUNIT")]
    assert "NAXIS2" not in table.meta


def test_plain_read_of_catprep_fails_where_the_esass_reader_works():
    # eSASS writes TNULL = -99 on the uint8 column OWNER: astropy's own reader raises.
    with pytest.raises(Exception, match="-99"):
        QTable.read(DATA / CATPREP)
    assert "OWNER" in _read(DATA / CATPREP, "esass-catprep").colnames


def test_layout_formats_refuse_the_other_layout():
    with pytest.raises(CatalogReadError, match="not an eSASS ermldet catalogue.*catprep"):
        with pytest.warns(InputDataWarning):
            QTable.read(DATA / CATPREP, format="esass-ermldet")


@pytest.mark.parametrize("name", FILES, ids=lambda p: f"{p.parent.name}/{p.name[11:18]}")
def test_writing_a_table_read_from_the_real_files_warns_nothing(name, tmp_path):
    table = _read(name, "esass")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning, of any kind, fails
        table.write(tmp_path / "a.fits", format="esass")
        table.write(tmp_path / "a.ecsv")
        write_table(table, tmp_path / "b.fits")
        write_table(table, tmp_path / "b.h5")
    back = QTable.read(tmp_path / "a.fits", format="esass")
    assert back.meta["bands"] == table.meta["bands"]
    assert back.meta["esass_layout"] == table.meta["esass_layout"]
    assert np.array_equal(back["ML_RATE_1"], table["ML_RATE_1"])


@pytest.mark.parametrize("suffix, kwargs", [(".fits", {"format": "esass"}), (".ecsv", {})])
def test_write_keeps_provenance_and_bands(tmp_path, suffix, kwargs):
    table = _read(DATA / CATPREP, "esass-catprep")
    table["z"] = np.linspace(0.1, 0.9, len(table))
    table["z"][:3] = np.nan  # three rows without an estimate: masked on the way back too
    with pytest.warns(acm.utils.exceptions.OutOfRangeWarning):
        out = acm.add_mass_columns(table, estimators=["cr-erass1"])
    path = tmp_path / f"out{suffix}"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out.write(path, **kwargs)
    back = QTable.read(path, **kwargs)
    assert back.meta["astro_clustermass"] == out.meta["astro_clustermass"]
    assert back.meta["astro_clustermass"]["cr-erass1"]["name"] == "cr-erass1"
    assert back.meta["bands"] == out.meta["bands"] == {
        0: [0.2, 10.0], 1: [0.2, 0.5], 2: [0.5, 1.0], 3: [1.0, 2.2], 4: [2.2, 10.0]}
    np.testing.assert_array_equal(back["M500c_cr-erass1"].mask, out["M500c_cr-erass1"].mask)


def test_outputs_honour_the_umask(tmp_path):
    table = QTable({"z": [0.1, 0.2]})
    old = os.umask(0o027)
    try:
        for name in ("a.ecsv", "a.fits", "a.h5"):
            write_table(table, tmp_path / name)
        table.write(tmp_path / "b.fits", format="esass")
    finally:
        os.umask(old)
    for name in ("a.ecsv", "a.fits", "a.h5", "b.fits"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o640, name


def test_ebi_stack_format_round_trip(tmp_path):
    from astro_clustermass.ebi import EBIParameters
    from astro_clustermass.io.ebi_stack import read_ebi_stack, write_ebi_stack

    params = EBIParameters()
    rng = np.random.default_rng(1)
    images = rng.poisson(0.3, (3, *params.image_shape)).astype(np.float32)
    catalog = Table({"z": [0.1, 0.2, 0.3], "NAME": ["a", "b", "c"]})
    write_ebi_stack(tmp_path / "s.h5", images, params, catalog=catalog)
    table = QTable.read(tmp_path / "s.h5", format="ebi-stack")
    assert table.colnames == ["z", "NAME", "ebi"]
    assert table["ebi"].shape == images.shape and np.array_equal(table["ebi"], images)
    assert table.meta["ebi_parameters"] == params.to_dict()
    table.write(tmp_path / "t.h5", format="ebi-stack")
    stack = read_ebi_stack(tmp_path / "t.h5")
    assert np.array_equal(stack.images, images)
    assert stack.params.to_dict() == params.to_dict()
    assert list(stack.catalog["NAME"]) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="column 'ebi'"):
        Table({"z": [1.0]}).write(tmp_path / "u.h5", format="ebi-stack")
