"""``astro-clustermass dataset``: training sets cut from survey fields (or stamps),
chunked, resumable, with ``--set`` for the simulator."""

import numpy as np
import pytest

pytest.importorskip("h5py")

from astro_clustermass.cli import main  # noqa: E402
from astro_clustermass.cnn.dataset import read_dataset  # noqa: E402

ARGS = ["--chunks", "2", "--area", "1", "--seed", "11", "--no-progress",
        "--set", "log10_mmin=13.3"]


@pytest.fixture(scope="module")
def field_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("fieldset")
    out, work = str(root / "d.h5"), str(root / "work")
    assert main(["dataset", out, "--work-dir", work, *ARGS]) == 0
    return out, work


def test_field_dataset_holds_the_fields_selected_clusters(field_set):
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    from astro_clustermass.ebi import energy_band_images
    from astro_clustermass.io.events import EventList
    from astro_clustermass.simulate import read_realisation

    out, work = field_set
    data = read_dataset(out)
    assert "field mode" in data.attrs["source"] and "2 of 2 planned chunks" in data.attrs["source"]
    n = 0
    for k in range(2):
        real = read_realisation(f"{work}/sim/field_{k:03d}")
        assert real.manifest["mode"] == "field" and real.manifest["seed"] == 11 + k
        assert real.manifest["config"]["log10_mmin"] == 13.3  # --set reached the simulator
        det = real.detections
        want = (np.asarray(det["MATCHED"], bool) & (np.asarray(det["EXT_LIKE"]) > 6)
                & (np.asarray(det["DET_LIKE"]) > 5))
        halos = set(np.asarray(det["HALO_ID"])[want].astype(int))
        rows = np.flatnonzero(np.asarray(data.catalog["realisation"]) == k)
        assert set(np.asarray(data.catalog["cluster_id"])[rows].astype(int)) == halos
        n += len(halos)
        # EBIs cut from the field's event file at the detected positions
        cat = data.catalog[rows]
        pos = SkyCoord(np.asarray(cat["RA"]) * u.deg, np.asarray(cat["DEC"]) * u.deg)
        np.testing.assert_array_equal(
            data.ebi[rows], energy_band_images(EventList.read(real.event_files), pos))
    assert len(data) == n > 0


def test_rerun_resumes_grows_and_refuses_other_settings(field_set, tmp_path, capsys):
    import os
    import shutil

    out, work = field_set
    w2, o2 = str(tmp_path / "work"), str(tmp_path / "d.h5")
    shutil.copytree(work, w2)
    stamp = os.path.getmtime(f"{w2}/sim/field_000/events.fits")
    args = ["dataset", o2, "--work-dir", w2, *ARGS]
    capsys.readouterr()
    assert main(args) == 0
    text = capsys.readouterr().out
    assert text.count("finished before") == 2
    assert os.path.getmtime(f"{w2}/sim/field_000/events.fits") == stamp
    # one more chunk: the first two are kept, a third field is simulated
    args[args.index("--chunks") + 1] = "3"
    open(f"{w2}/sim/STOP", "w").close()  # ... but a STOP file stops before it
    assert main(args) == 0
    assert "2 of 3 chunks" in capsys.readouterr().out
    assert not os.path.exists(f"{w2}/sim/field_002")
    # another simulator parameter in the same work dir is refused, naming it
    assert main([*args, "--set", "lx_scatter_dex=0.3"]) == 1
    err = capsys.readouterr().err
    assert "config.lx_scatter_dex: 0.2 there, 0.3 now" in err
    # a simulator parameter the work dir never recorded (added to SimConfig later)
    # counts as its default there: resuming works, setting it otherwise is refused
    import json

    with open(f"{w2}/settings.json") as fh:
        recorded = json.load(fh)
    del recorded["config"]["rc_mass_slope"]
    with open(f"{w2}/settings.json", "w") as fh:
        json.dump(recorded, fh)
    assert main(args) == 0
    capsys.readouterr()
    assert main([*args, "--set", "rc_mass_slope=0.3"]) == 1
    assert "config.rc_mass_slope: 0.0 there, 0.3 now" in capsys.readouterr().err
    # an output file that this work dir did not write is not replaced
    other = str(tmp_path / "other.h5")
    open(other, "w").close()
    assert main(["dataset", other, "--work-dir", w2, *ARGS]) == 1
    assert "--overwrite" in capsys.readouterr().err


def test_bad_set_and_mode_are_refused(tmp_path):
    with pytest.raises(SystemExit, match="SimConfig field"):
        main(["dataset", str(tmp_path / "d.h5"), "--work-dir", str(tmp_path), "--chunks", "1",
              "--set", "no_such_parameter=1"])
    with pytest.raises(SystemExit):
        main(["dataset", str(tmp_path / "d.h5"), "--work-dir", str(tmp_path), "--chunks",
              "1", "--mode", "tiles"])


def test_stamps_mode_fills_realisations_chunk_by_chunk(tmp_path):
    from astro_clustermass.simulate import read_realisation

    out = str(tmp_path / "s.h5")
    assert main(["dataset", out, "--work-dir", str(tmp_path / "w"), "--mode", "stamps",
                 "--chunks", "2", "--stamps-per-realisation", "30", "--seed", "5",
                 "--no-progress", "--set", "log10_mmin=13.3"]) == 0
    data = read_dataset(out)
    assert "stamps mode" in data.attrs["source"] and "2 of 2 planned" in data.attrs["source"]
    for k in range(2):  # 30 stamps = one chunk per realisation, seeds 5 and 6
        real = read_realisation(str(tmp_path / "w" / "sim" / f"real_{k:03d}"))
        assert real.manifest["seed"] == 5 + k and len(real.event_files) == 1
    assert set(np.asarray(data.catalog["realisation"])) <= {0, 1}


def test_progress_line_totals_over_fields_and_realisations():
    import io

    from astro_clustermass.cli.dataset import _Progress

    out = io.StringIO()
    report = _Progress(out=out)
    # two fields, one count each; then a stamp realisation whose manifest grows
    report(1, 4, "sim/field_000", {"counts": {"selected_matched": 73}}, 20.0)
    report(2, 4, "sim/field_001", {"counts": {"selected_matched": 72}}, 20.0)
    report(3, 4, "sim/real_000", {"selected": 10}, 10.0)
    report(4, 4, "sim/real_000", {"selected": 25}, 10.0)
    lines = out.getvalue().splitlines()
    assert "73 selected cluster detections here, 73 in all" in lines[0]
    assert "72 selected cluster detections here, 145 in all" in lines[1]
    assert "25 selected cluster detections here, 170 in all" in lines[3]
