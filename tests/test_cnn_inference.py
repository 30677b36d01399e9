"""The shipped ensemble's predictions do not depend on how inference is run (fused or
member by member, micro-batch size, batch size) beyond float32 round-off."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from astro_clustermass.cnn.ensemble import Ensemble  # noqa: E402
from astro_clustermass.cnn.io import default_weights_dir  # noqa: E402


@pytest.fixture(scope="module")
def shipped():
    rng = np.random.default_rng(4)
    ebi = rng.poisson(0.6, (70, 50, 50, 10)).astype(np.float32)
    ebi[:10, 20:30, 20:30, :] += rng.poisson(5.0, (10, 10, 10, 10))  # a few bright cores
    z = rng.uniform(0.05, 1.0, 70)
    ens = Ensemble.load(default_weights_dir())
    loop = Ensemble(ens.models, ens.normalisation, fuse=False)
    return ens, loop, ebi, z, loop.predict(ebi, z)


@pytest.mark.parametrize("micro_batch,dense_batch",
                         [(1, 1), (7, 20), (16, 16), (16, 256), (32, 32), (64, 256)])
def test_batching_does_not_change_the_masses(shipped, micro_batch, dense_batch):
    """Convolution micro-batch and dense-layer batch sizes (the default, 16 and 256, and
    the earlier 16 and 16 among them) give the member loop's masses."""
    ens, _, ebi, z, (mean0, sig0, mu0, s0) = shipped
    ens.cpu_micro_batch, ens.cpu_dense_batch = micro_batch, dense_batch
    try:
        mean, sig, mu, s = ens.predict(ebi, z, batch_size=45)
    finally:
        ens.cpu_micro_batch = Ensemble.cpu_micro_batch
        ens.cpu_dense_batch = Ensemble.cpu_dense_batch
    # float32 round-off of log10 M ~ 14 (eps 1.2e-7 x 14 x a few operations)
    np.testing.assert_allclose(mu, mu0, rtol=0, atol=2e-5)
    np.testing.assert_allclose(s, s0, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mean, mean0, rtol=0, atol=2e-5)
    np.testing.assert_allclose(sig, sig0, rtol=1e-5, atol=1e-6)
    assert ens._fused is not None  # the fused path was the one compared
