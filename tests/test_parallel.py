"""Catalogue-scale estimation on Dask: tiles, equality with the single-process path on
every scheduler, atomic output, resume after a crash, bounded event reading, CLI."""

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.table import QTable

import astro_clustermass as acm
from astro_clustermass import parallel
from astro_clustermass.catalog import MissingColumnError
from astro_clustermass.core import EstimatorSpec, MassEstimator
from astro_clustermass.io import events as events_io
from astro_clustermass.io.events import EventList, in_box
from astro_clustermass.parallel import TileGrid, estimate_catalog

# The comparisons here run the relations on random and simulated catalogues with rows
# outside their calibrated ranges or without usable positions, and estimators made to
# fail: the OutOfRangeWarning, the "failed; its columns are masked" warning and the
# "no usable positions" warning are expected (the first two are tested in
# test_relations.py and test_registry.py).
pytestmark = [
    pytest.mark.filterwarnings("ignore::astro_clustermass.utils.exceptions.OutOfRangeWarning"),
    pytest.mark.filterwarnings(
        "ignore:estimator .* failed; its columns are masked"
        ":astro_clustermass.utils.exceptions.AstroClusterMassUserWarning"),
    pytest.mark.filterwarnings(
        "ignore:estimate_catalog. no usable positions"
        ":astro_clustermass.utils.exceptions.InputDataWarning"),
]

BENCH = Path(__file__).parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))  # workers (spawned processes) import it by name too
    try:
        yield importlib.import_module("bench_parallel")
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="module")
def survey(bench, tmp_path_factory):
    """60 clusters in a 14 x 14 deg field straddling RA = 0, with their event files."""
    root = tmp_path_factory.mktemp("survey")
    cat, events = bench.synthetic_survey(60, root / "events", seed=3, dec_range=(-7.0, 7.0),
                                         ra_range=(353.0, 367.0), file_size_deg=5.0)
    cat["RA"] = np.mod(cat["RA"].value, 360.0) * u.deg
    # a row without a position and one with a bad redshift
    cat["RA"][5] = np.nan * u.deg
    cat["z"][7] = -1.0
    return cat, events


class ToyZ(MassEstimator):
    """A catalogue-only toy: log10 M = 14 + z."""

    name = "toy-z"
    inputs = ("z",)

    def _estimate(self, view):
        z = view["z"].value
        n = len(view)
        return 14.0 + z, np.full(n, 0.15), np.isfinite(z), np.full(n, "")


def _same(a, b):
    """Columns equal in values, masks and units (NaN == NaN)."""
    av = np.asarray(getattr(a, "unmasked", a))
    bv = np.asarray(getattr(b, "unmasked", b))
    av, bv = np.asarray(getattr(av, "value", av)), np.asarray(getattr(bv, "value", bv))
    if av.dtype.kind == "f":
        equal = np.array_equal(av, bv, equal_nan=True)
    else:
        equal = np.array_equal(av.astype(str), bv.astype(str))
    mask_a = getattr(a, "mask", None)
    mask_b = getattr(b, "mask", None)
    return (equal and getattr(a, "unit", None) == getattr(b, "unit", None)
            and np.array_equal(np.asarray(mask_a if mask_a is not None else False),
                               np.asarray(mask_b if mask_b is not None else False)))


def _assert_identical(out, ref):
    assert out.colnames == ref.colnames
    assert type(out) is type(ref)
    for name in ref.colnames:
        assert _same(out[name], ref[name]), name


@pytest.fixture(scope="module")
def reference(survey, bench):
    cat, events = survey
    return acm.add_mass_columns(cat, ["lx-chiu22", "cr-erass1", bench.ApertureRate(events),
                                      ToyZ()])


def _estimators(bench):
    return ["lx-chiu22", "cr-erass1", bench.aperture_spec(), ToyZ()]


# -- tiles --------------------------------------------------------------------------------
def test_tile_grid_covers_the_sky_with_equal_areas():
    grid = TileGrid(4.0)
    rng = np.random.default_rng(1)
    ra = rng.uniform(0, 360, 20000)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, 20000)))
    tiles = grid.tile_of(ra, dec)
    assert tiles.min() >= 0 and tiles.max() < grid.n_tiles
    for t in np.unique(tiles)[::37]:
        ra_lo, ra_hi, dec_lo, dec_hi = grid.bounds(t)
        sel = tiles == t
        assert np.all((ra[sel] >= ra_lo) & (ra[sel] <= ra_hi))
        assert np.all((dec[sel] >= dec_lo) & (dec[sel] <= dec_hi))
    areas = np.array([grid.area(t) for t in range(grid.n_tiles)])
    assert areas.sum() == pytest.approx(41252.96, rel=1e-6)
    body = areas[grid.n_ra[0]:-grid.n_ra[-1]]  # all but the polar bands
    assert body.max() / body.min() < 1.1
    assert areas.max() / areas.min() < 1.6
    assert np.median(areas) == pytest.approx(grid.band_height ** 2, rel=0.05)
    assert np.all(grid.tile_of([np.nan, 10.0, 10.0], [0.0, np.inf, 95.0]) == -1)
    assert grid.tile_of([0.0], [90.0])[0] >= grid.offset[-2]  # the last band
    assert grid.tile_of([360.0], [0.0])[0] == grid.tile_of([0.0], [0.0])[0]


def test_search_box_holds_every_photon_an_ebi_needs():
    """Any point within the margin of a tile position lies in the tile's search box."""
    grid = TileGrid(2.0)
    rng = np.random.default_rng(2)
    margin = parallel.DEFAULT_MARGIN.to_value(u.deg)
    ra = np.concatenate([rng.uniform(0, 360, 3000), [0.01, 359.99, 180.0]])
    dec = np.concatenate([np.degrees(np.arcsin(rng.uniform(-0.999, 0.999, 3000))),
                          [0.0, 45.0, 88.5]])
    tiles = grid.tile_of(ra, dec)
    # the corners of a 1200" EBI square around each position
    half = 600.0 / 3600.0
    for sx in (-1, 1):
        for sy in (-1, 1):
            cd = np.clip(dec + sy * half, -90, 90)
            cr = np.mod(ra + sx * half / np.cos(np.radians(cd)), 360.0)
            for i in range(len(ra)):
                box = grid.search_box(tiles[i], margin)
                assert in_box(np.array([cr[i]]), np.array([cd[i]]), box)[0], (ra[i], dec[i])


def test_event_list_reads_a_box_exactly_in_chunks(survey, monkeypatch):
    """A tile's photons go from the files to an EventList: streamed, exactly the box."""
    cat, events = survey
    box = (355.0, 2.0, -3.0, 3.0)  # wraps through RA = 0
    expected = []
    for p in events:
        with fits.open(p) as h:
            d = h["EVENTS"].data
            keep = in_box(d["RA"], d["DEC"], box)
            expected.append(np.c_[np.mod(d["RA"][keep], 360.0), d["DEC"][keep]])
    expected = np.concatenate(expected)
    reads = []
    original = events_io._FileSource.chunks

    def counting(self, wanted):
        for chunk in original(self, wanted):
            reads.append(len(chunk[0]["RA"]))
            yield chunk
    monkeypatch.setattr(events_io._FileSource, "chunks", counting)
    ev = EventList.read(events, box=box, chunk_rows=997)
    assert max(reads) <= 997 and len(reads) > len(events)  # many chunks per file
    assert len(ev) == len(expected) > 0
    got = np.c_[ev.ra, ev.dec]
    assert np.allclose(np.sort(got, axis=0), np.sort(expected, axis=0), rtol=0, atol=1e-9)
    # a box without photons is a valid empty event list
    assert len(EventList.read(events, box=(100.0, 101.0, 50.0, 51.0))) == 0


# -- equality with the single-process path --------------------------------------------------
@pytest.mark.parametrize("scheduler", [None, "synchronous", "threads", "processes"])
def test_identical_to_add_mass_columns(survey, reference, bench, scheduler):
    cat, events = survey
    before = cat.copy()
    out = estimate_catalog(cat, _estimators(bench), events=events, tile_size=3.0,
                           scheduler=scheduler, workers=2, progress=False)
    _assert_identical(out, reference)
    info = out.meta["astro_clustermass_run"]
    assert info["tiles"] > 10 and info["tiles_reused"] == 0
    _assert_identical(cat, before)  # input untouched
    # the event-based estimator really saw photons, and positionless rows say why
    assert (~out["M500c_aperture-rate"].mask).sum() > 30
    assert "RA" in out["M500c_aperture-rate_flag"][5]


def test_identical_on_distributed_local_cluster_and_address(survey, reference, bench):
    distributed = pytest.importorskip("distributed")
    cat, events = survey
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            out = estimate_catalog(cat, _estimators(bench), events=events, tile_size=3.0,
                                   scheduler=client, progress=False)
            _assert_identical(out, reference)
        # the same cluster reached by its address, as `--scheduler tcp://...` does
        assert cluster.scheduler_address.startswith(("tcp://", "inproc://"))
        out = estimate_catalog(cat, _estimators(bench), events=events, tile_size=5.0,
                               scheduler=cluster.scheduler_address, progress=False)
        _assert_identical(out, reference)


def test_unreachable_scheduler_is_a_clear_error(survey, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr(parallel.runner, "SCHEDULER_CONNECT_TIMEOUT", "1s")
    cat, _ = survey
    with pytest.raises(OSError, match="scheduler at 'tcp://127.0.0.1:9'"):
        estimate_catalog(cat, ["lx-chiu22"], scheduler="tcp://127.0.0.1:9", progress=False)


# -- output, resume, errors -----------------------------------------------------------------
class CrashOrCount(MassEstimator):
    """Counts its calls in a file; raises while ``marker`` exists and a row has z > cut."""

    name = "crashy"
    inputs = ("z",)

    def __init__(self, log, marker, cut=0.9):
        self.log, self.marker, self.cut = str(log), str(marker), cut

    def parameters(self):
        return {"cut": self.cut}

    def _estimate(self, view):
        with open(self.log, "a") as fh:
            fh.write(f"{len(view)}\n")
        z = view["z"].value
        if Path(self.marker).exists() and np.any(z > self.cut):
            raise RuntimeError("simulated crash")
        n = len(view)
        return 14.0 + 0 * z, np.full(n, 0.2), np.ones(n, bool), np.full(n, "")


def test_crash_then_resume_recomputes_only_unfinished_tiles(survey, tmp_path):
    cat, _ = survey
    log, marker = tmp_path / "calls.txt", tmp_path / "crash"
    marker.touch()
    out = tmp_path / "masses.fits"
    work = tmp_path / "work"
    est = [CrashOrCount(log, marker), "lx-chiu22"]
    with pytest.raises(acm.EstimatorError, match="crashy.*simulated crash"):
        estimate_catalog(cat, est, tile_size=3.0, scheduler="synchronous", output=out,
                         workdir=work, on_error="raise", progress=False)
    assert not out.exists()  # no output, and no half-written file next to it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calls.txt", "crash", "work"]
    run_dir = next(work.glob("run-*"))
    finished = sorted(p.name for p in run_dir.glob("tile_*.npz"))
    assert not list(run_dir.glob("*.part"))
    assert 0 < len(finished)
    first_calls = len(log.read_text().split())
    marker.unlink()
    log.write_text("")
    result = estimate_catalog(cat, est, tile_size=3.0, scheduler="synchronous", output=out,
                              workdir=work, on_error="raise", progress=False)
    info = result.meta["astro_clustermass_run"]
    assert info["tiles_reused"] == len(finished)
    assert len(log.read_text().split()) == info["tiles"] - len(finished)
    assert first_calls >= len(finished)
    ref = acm.add_mass_columns(cat, [CrashOrCount(tmp_path / "x", tmp_path / "nope"),
                                     "lx-chiu22"])
    _assert_identical(result, ref)
    back = QTable.read(out)
    np.testing.assert_array_equal(back["M500c_lx-chiu22"].mask, ref["M500c_lx-chiu22"].mask)
    assert not run_dir.exists()  # cleaned up after success
    # the output is not replaced unless asked
    with pytest.raises(FileExistsError):
        estimate_catalog(cat, est, tile_size=3.0, scheduler="synchronous", output=out,
                         workdir=work, progress=False)


def test_changed_inputs_do_not_reuse_tiles(survey, tmp_path):
    cat, _ = survey
    work = tmp_path / "work"
    kw = dict(tile_size=3.0, scheduler="synchronous", workdir=work, cleanup=False,
              progress=False)
    first = estimate_catalog(cat, [ToyZ()], **kw)
    again = estimate_catalog(cat, [ToyZ()], **kw)
    assert again.meta["astro_clustermass_run"]["tiles_reused"] == \
        first.meta["astro_clustermass_run"]["tiles"]
    changed = cat.copy()
    changed["z"][0] = 0.5
    out = estimate_catalog(changed, [ToyZ()], **kw)
    assert out.meta["astro_clustermass_run"]["tiles_reused"] == 0
    assert float(out["log10M500c_toy-z"].unmasked[0].value) == pytest.approx(14.5)
    out = estimate_catalog(cat, [ToyZ(), "lx-chiu22"], **kw)
    assert out.meta["astro_clustermass_run"]["tiles_reused"] == 0
    out = estimate_catalog(cat, [ToyZ()], **{**kw, "resume": False})
    assert out.meta["astro_clustermass_run"]["tiles_reused"] == 0
    manifest = json.loads(next(work.glob("run-*/manifest.json")).read_text())
    assert {"catalog", "estimators", "tile_size", "events", "margin_deg"} <= set(manifest)


def test_input_errors_raise_before_any_task(survey, tmp_path):
    cat, _ = survey
    with pytest.raises(MissingColumnError, match="LX"):
        estimate_catalog(QTable({"z": [0.1]}), ["lx-chiu22"], workdir=tmp_path,
                         progress=False)
    assert not list(tmp_path.iterdir())
    with pytest.raises(TypeError, match="astropy Table"):
        estimate_catalog({"z": [0.1]}, ["lx-chiu22"], progress=False)
    with pytest.raises(ValueError, match="unknown scheduler"):
        estimate_catalog(cat, [ToyZ()], scheduler="nonsense", progress=False)


def test_failing_estimator_is_masked_per_tile_and_hanging_one_times_out(survey, tmp_path):
    cat = survey[0][:12]

    class HangNorth(MassEstimator):
        name = "hang-north"
        inputs = ("z", "DEC")

        def _estimate(self, view):
            if np.nanmax(view["DEC"].value) > 0:
                time.sleep(600)
            n = len(view)
            return np.full(n, 14.0), np.full(n, 0.2), view.row_valid, view.row_reason

    start = time.monotonic()
    # 10-degree bands have an edge at Dec = 0: every tile is north or south
    out = estimate_catalog(cat, [HangNorth(), ToyZ()], tile_size=10.0,
                           scheduler="synchronous", timeout=1.5, progress=False)
    assert time.monotonic() - start < 60
    north = cat["DEC"].value > 0
    assert out["M500c_hang-north"].mask[north].all()
    assert all("1.5 s" in f for f in out["M500c_hang-north_flag"][north])
    south_ok = ~north & np.isfinite(cat["RA"].value) & (np.asarray(cat["z"]) > 0)
    assert south_ok.sum() >= 3
    assert not out["M500c_hang-north"].mask[south_ok].any()
    assert not out["M500c_toy-z"].mask[np.asarray(cat["z"]) > 0].any()


# -- CLI ---------------------------------------------------------------------------------------
def _cli(argv):
    from astro_clustermass.cli import run as parallel_cli

    parser = argparse.ArgumentParser()
    parallel_cli.add_arguments(parser)
    return parallel_cli.run(parser.parse_args(argv))


def test_cli_run_subcommand(survey, tmp_path, capsys):
    from astro_clustermass.esass import write_table

    cat, events = survey
    src = tmp_path / "cat.fits"
    write_table(cat, src)
    out = tmp_path / "out.fits"
    argv = [str(src), "--events", *events, "-o", str(out), "-e", "lx-chiu22", "-e",
            "cr-erass1", "--scheduler", "synchronous", "--tile-size", "3", "--no-progress"]
    assert _cli(argv) == 0
    assert "wrote 60 rows" in capsys.readouterr().out
    back = QTable.read(out)
    ref = acm.add_mass_columns(QTable.read(src), ["lx-chiu22", "cr-erass1"])
    for name in ("log10M500c_lx-chiu22", "log10M500c_cr-erass1"):
        np.testing.assert_array_equal(back[name].filled(np.nan), ref[name].filled(np.nan))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.fits", "out.fits"]
    with pytest.raises(FileNotFoundError, match="nothing_here"):
        _cli([str(src), "--events", str(tmp_path / "nothing_here*.fits"), "-o",
              str(tmp_path / "o2.fits")])
    # through the package's dispatcher
    from astro_clustermass import cli

    assert cli.main(["run", str(src), "-o", str(tmp_path / "o3.fits"), "-e", "lx-chiu22",
                     "--scheduler", "synchronous", "--no-progress"]) == 0


def test_estimator_spec_wants_events(bench):
    assert bench.aperture_spec().accepts("events")
    assert not EstimatorSpec("toy-z", ToyZ, ("z",)).accepts("events")


# -- property: the tiled path behaves like add_mass_columns on any table --------------------
def test_random_tables_behave_like_add_mass_columns():
    """Random small catalogues (bad values, bad positions, wrong units): same error type,
    or identical columns, whatever the tile size."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from astro_clustermass.catalog import ColumnUnitError

    values = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                       st.floats(0.01, 2.0), st.floats(1e42, 1e45))
    units = st.sampled_from([None, "deg", "keV", "erg / s"])

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.integers(0, 6).flatmap(lambda n: st.tuples(
        st.lists(values, min_size=n, max_size=n), st.lists(values, min_size=n, max_size=n),
        st.lists(st.one_of(st.floats(-30, 400), st.just(np.nan)), min_size=n, max_size=n),
        st.lists(st.one_of(st.floats(-100, 100), st.just(np.nan)), min_size=n,
                 max_size=n))),
        units, units, st.sampled_from([0.5, 8.0, 90.0]))
    def check(cols, lx_unit, ra_unit, tile_size):
        z, lx, ra, dec = cols
        table = QTable({"z": np.array(z, float), "LX": np.array(lx, float),
                        "RA": np.array(ra, float), "DEC": np.array(dec, float)})
        if lx_unit:
            table["LX"] = table["LX"] * u.Unit(lx_unit)
        if ra_unit:
            table["RA"] = table["RA"] * u.Unit(ra_unit)
        est = ["lx-chiu22", ToyZ()]
        try:
            ref = acm.add_mass_columns(table, est)
        except (MissingColumnError, ColumnUnitError, TypeError, acm.EstimatorError) as exc:
            with pytest.raises(type(exc)):
                estimate_catalog(table, est, tile_size=tile_size, scheduler="synchronous",
                                 progress=False)
            return
        out = estimate_catalog(table, est, tile_size=tile_size, scheduler="synchronous",
                               progress=False)
        out.meta.pop("astro_clustermass_run")
        _assert_identical(out, ref)

    check()
