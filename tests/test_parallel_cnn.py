"""Catalogue-scale runs with the CNN ensemble fed by event files (parallel + ebi)."""
import numpy as np
import pytest

pytest.importorskip("torch")

from astro_clustermass import add_mass_columns  # noqa: E402
from astro_clustermass.demo import demo_sky  # noqa: E402
from astro_clustermass.parallel import estimate_catalog  # noqa: E402


@pytest.fixture(scope="module")
def sky(tmp_path_factory):
    table, event_files = demo_sky(str(tmp_path_factory.mktemp("sky")), n_halos=60, seed=7,
                                  progress=False)
    assert len(table) >= 3, "the small sky must hold a few selected clusters"
    return table, event_files


def test_tiled_cnn_run_equals_add_mass_columns(sky, tmp_path):
    table, events = sky
    names = ["cnn-ensemble", "lx-chiu22"]
    ref = add_mass_columns(table, estimators=names, events=events)
    ra = np.asarray(table["RA"].value)
    # tiles much smaller than the sky patch: clusters end up in several tiles, near edges
    tile = max(0.05, float(np.ptp(ra)) / 3)
    out = estimate_catalog(table, names, events=events, tile_size=tile,
                           scheduler="synchronous", workdir=str(tmp_path / "run"),
                           progress=False)
    assert out.meta["astro_clustermass_run"]["tiles"] > 1
    for name in names:
        a = np.asarray(ref[f"log10M500c_{name}"].filled(np.nan).value)
        b = np.asarray(out[f"log10M500c_{name}"].filled(np.nan).value)
        assert np.all(np.isfinite(a))
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-6)
        np.testing.assert_allclose(np.asarray(out[f"log10M500c_{name}_err"].value),
                                   np.asarray(ref[f"log10M500c_{name}_err"].value), atol=1e-6)
