"""Per-process caches of manifests and loaded ensembles (astro_clustermass.cnn)."""
import os
import shutil

import numpy as np
import pytest

pytest.importorskip("torch")

from astro_clustermass.cnn.estimator import CNNEnsembleEstimator  # noqa: E402
from astro_clustermass.cnn.io import ManifestError, default_weights_dir, read_manifest  # noqa: E402


@pytest.fixture
def ensemble_copy(tmp_path):
    d = tmp_path / "ens"
    shutil.copytree(default_weights_dir(), d)
    return d


def test_manifest_copies_are_independent_and_edits_are_seen(ensemble_copy):
    d = str(ensemble_copy)
    first = read_manifest(d)
    first["members"].clear()
    assert read_manifest(d)["members"], "a caller's change leaked into the cache"
    path = ensemble_copy / "manifest.yaml"
    text = path.read_text()
    name = read_manifest(d).get("name")
    path.write_text(text.replace(f"name: {name}", "name: renamed-ensemble", 1)
                    if name else text + "\nname: renamed-ensemble\n")
    assert read_manifest(d)["name"] == "renamed-ensemble"


def test_estimators_share_the_loaded_networks_until_a_file_changes(ensemble_copy):
    d = str(ensemble_copy)
    a, b = CNNEnsembleEstimator(weights=d), CNNEnsembleEstimator(weights=d)
    assert a.ensemble is b.ensemble
    member = ensemble_copy / read_manifest(d)["members"][0]["file"]
    raw = bytearray(member.read_bytes())
    raw[-5] ^= 0xFF
    member.write_bytes(bytes(raw))
    st = member.stat()
    os.utime(member, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    with pytest.raises(ManifestError, match="SHA-256"):
        CNNEnsembleEstimator(weights=d).ensemble


def test_cached_ensemble_gives_the_same_masses(ensemble_copy):
    from astropy.table import QTable

    d = str(ensemble_copy)
    rng = np.random.default_rng(0)
    images = rng.poisson(0.5, (4, 50, 50, 10)).astype(np.float32)
    table = QTable({"z": [0.1, 0.3, 0.5, 0.8]})
    r1 = CNNEnsembleEstimator(weights=d, images=images).estimate(table)
    r2 = CNNEnsembleEstimator(weights=d, images=images).estimate(table)
    assert np.array_equal(r1.log10_mass, r2.log10_mass)
    assert np.array_equal(r1.log10_mass_err, r2.log10_mass_err)
