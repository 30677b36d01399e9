"""Deep ensembles of the CNN (imports torch).

N independently initialised members each predict (mu_i, sigma_i) of log10 M500c; the
ensemble prediction is the mixture's mean and standard deviation (seed 000 Eqs. 2-3,
Lakshminarayanan et al. 2017):

.. math::

    \\mu_* = \\frac{1}{N}\\sum_i \\mu_i, \\qquad
    \\sigma_*^2 = \\frac{1}{N}\\sum_i (\\sigma_i^2 + \\mu_i^2) - \\mu_*^2 .

For the seed-000 architecture, `Ensemble` evaluates all members in one fused network
(first convolution shared as one wide convolution, the second as a grouped convolution,
the dense layers as batched matrix products); this gives the same numbers as evaluating
the members one by one (to float32 rounding) several times faster on CPU. On CPU the
convolutions run in micro-batches of 16 clusters (their wide activations stay in cache)
and the dense layers on up to 256 clusters at once (their matrix products need rows).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .dataset import Normalisation
from .model import Seed000Net

__all__ = ["combine", "Ensemble", "FusedSeed000"]


def combine(mu, sigma):
    """Combine member predictions by seed 000 Eqs. 2-3.

    Parameters
    ----------
    mu, sigma : array, shape (M, N)
        Member means and standard deviations (any common unit, e.g. dex).

    Returns
    -------
    mean, sigma_star : arrays, shape (N,)
    """
    mu = np.asarray(mu, float)
    sigma = np.asarray(sigma, float)
    mean = mu.mean(axis=0)
    # <sigma^2 + mu^2> - mean^2, written as <sigma^2> + <(mu - mean)^2> (same value,
    # no cancellation between two large numbers).
    var = (sigma ** 2).mean(axis=0) + ((mu - mean) ** 2).mean(axis=0)
    return mean, np.sqrt(var)


class FusedSeed000(nn.Module):
    """All members of a seed-000 ensemble evaluated as one network.

    Output: tensor (M, N, 2) of (mu, sigma) per member, in normalised units.
    """

    def __init__(self, members):
        super().__init__()
        if not members or not all(isinstance(m, Seed000Net) for m in members):
            raise TypeError("FusedSeed000 needs a non-empty list of Seed000Net members")
        m0 = members[0]
        self.n_members = len(members)
        self.f1 = m0.conv1.out_channels
        self.f2 = m0.conv2.out_channels
        k = m0.conv1.kernel_size[0]
        M = self.n_members
        self.conv1 = nn.Conv2d(m0.conv1.in_channels, M * self.f1, k, padding=k // 2)
        self.conv2 = nn.Conv2d(M * self.f1, M * self.f2, k, padding=k // 2, groups=M)
        with torch.no_grad():
            self.conv1.weight.copy_(torch.cat([m.conv1.weight for m in members]))
            self.conv1.bias.copy_(torch.cat([m.conv1.bias for m in members]))
            self.conv2.weight.copy_(torch.cat([m.conv2.weight for m in members]))
            self.conv2.bias.copy_(torch.cat([m.conv2.bias for m in members]))
            self.dense_w = nn.ParameterList(
                [nn.Parameter(torch.stack([m.dense[j].weight.t() for m in members]))
                 for j in range(len(m0.dense))])
            self.dense_b = nn.ParameterList(
                [nn.Parameter(torch.stack([m.dense[j].bias for m in members])[:, None, :])
                 for j in range(len(m0.dense))])
            self.head_w = nn.Parameter(torch.stack([m.head.linear.weight.t() for m in members]))
            self.head_b = nn.Parameter(
                torch.stack([m.head.linear.bias for m in members])[:, None, :])
        self.sigma_floor = m0.head.sigma_floor
        self.eval()

    def features(self, x):
        """The convolutional part: (N, C, H, W) -> (M, N, f2 * s * s)."""
        n = x.shape[0]
        h = F.avg_pool2d(F.relu_(self.conv1(x)), 2)
        # max-pool and ReLU commute: pooling first touches 4x less memory
        h = F.relu_(F.max_pool2d(self.conv2(h), 2))
        # (N, M*f2, s, s) -> (M, N, f2*s*s): each member's features in its own order
        return h.contiguous().reshape(n, self.n_members, -1).transpose(0, 1)

    def dense_head(self, h, z):
        """The dense part: features (M, N, F) and redshifts (N,) -> (M, N, 2)."""
        M, n = h.shape[0], h.shape[1]
        zz = z.reshape(1, n, 1).to(h.dtype).expand(M, n, 1)
        h = torch.cat([h, zz], dim=2)
        for w, b in zip(self.dense_w, self.dense_b):
            h = F.relu(torch.baddbmm(b, h, w))
        raw = torch.baddbmm(self.head_b, h, self.head_w)
        return torch.stack([raw[..., 0], F.softplus(raw[..., 1]) + self.sigma_floor], dim=-1)

    def forward(self, x, z):
        return self.dense_head(self.features(x), z)


class Ensemble:
    """An ensemble of trained members plus the normalisation they were trained with.

    Parameters
    ----------
    models : list of `torch.nn.Module`
    normalisation : `~astro_clustermass.cnn.dataset.Normalisation`
    device : str
    fuse : bool
        Evaluate seed-000 members as one fused network (default True).
    """

    def __init__(self, models, normalisation, device="cpu", fuse=True):
        self.models = [m.to(device).eval() for m in models]
        self.normalisation = normalisation
        self.device = torch.device(device)
        self._fused = None
        if fuse and all(isinstance(m, Seed000Net) for m in self.models):
            self._fused = FusedSeed000(self.models).to(self.device)
            if self.device.type == "cpu":
                self._fused = self._fused.to(memory_format=torch.channels_last)

    def __len__(self):
        return len(self.models)

    @classmethod
    def load(cls, weights_dir, device="cpu", fuse=True):
        """Load an ensemble directory (see `astro_clustermass.cnn.io`)."""
        from .io import load_members

        models, manifest = load_members(weights_dir)
        ens = cls(models, Normalisation.from_dict(manifest["normalisation"]), device, fuse)
        ens.manifest = manifest
        return ens

    #: Clusters per forward pass of the convolutions on CPU: small batches keep the wide
    #: activations of the fused network in cache (16 is about 3x faster than 128 on a
    #: 2-core EPYC).
    cpu_micro_batch = 16
    #: Clusters per pass of the fused dense layers on CPU (their matrix products are
    #: inefficient with the 16 rows of a convolution micro-batch).
    cpu_dense_batch = 256

    @torch.inference_mode()
    def predict_normalised(self, x, z):
        """Member outputs for normalised inputs (N, C, H, W), (N,): tensor (M, N, 2)."""
        x = x.to(self.device)
        z = z.to(self.device)
        if self.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
            step = self.cpu_micro_batch
        else:
            step = max(1, len(x))
        outs = []
        if self._fused is not None and self.device.type == "cpu":
            # convolutions in micro-batches, the dense layers on up to cpu_dense_batch
            dense = max(step, self.cpu_dense_batch)
            for d in range(0, len(x), dense):
                stop = min(d + dense, len(x))
                feats = [self._fused.features(x[s:min(s + step, stop)])
                         for s in range(d, stop, step)]
                outs.append(self._fused.dense_head(torch.cat(feats, dim=1), z[d:stop]))
        else:
            for s in range(0, len(x), step):
                xs, zs = x[s:s + step], z[s:s + step]
                if self._fused is not None:
                    outs.append(self._fused(xs, zs))
                else:
                    outs.append(torch.stack([m(xs, zs) for m in self.models]))
        if not outs:
            return torch.zeros((len(self), 0, 2))
        return torch.cat(outs, dim=1)

    def predict_members(self, ebi, z, batch_size=1024, progress=False):
        """Member predictions in dex.

        Parameters
        ----------
        ebi : array, shape (N, ny, nx, nbands)
            Energy-band images (counts, channel-last).
        z : array, shape (N,)
        batch_size : int
        progress : bool
            Show a tqdm progress bar.

        Returns
        -------
        mu, sigma : arrays, shape (M, N)
            log10(M500c / Msun) mean and standard deviation of each member [dex].
        """
        ebi = np.asarray(ebi) if not hasattr(ebi, "shape") else ebi
        z = np.asarray(z, dtype=float)
        if len(ebi) != len(z):
            raise ValueError(f"{len(ebi)} images but {len(z)} redshifts")
        n = len(z)
        mu = np.empty((len(self), n))
        sig = np.empty((len(self), n))
        norm = self.normalisation
        starts = range(0, n, batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="CNN ensemble", unit="batch")
        for s in starts:
            x = torch.from_numpy(norm.images(np.asarray(ebi[s:s + batch_size])))
            zz = torch.from_numpy(norm.redshift(z[s:s + batch_size]))
            out = self.predict_normalised(x, zz).cpu().numpy().astype(float)
            mu[:, s:s + batch_size], sig[:, s:s + batch_size] = norm.to_dex(
                out[..., 0], out[..., 1])
        return mu, sig

    def predict(self, ebi, z, batch_size=1024, progress=False):
        """Ensemble prediction (seed 000 Eqs. 2-3) in dex.

        Returns
        -------
        mean, sigma_star : arrays (N,)
        mu, sigma : arrays (M, N), the member predictions
        """
        mu, sig = self.predict_members(ebi, z, batch_size=batch_size, progress=progress)
        mean, sstar = combine(mu, sig)
        return mean, sstar, mu, sig
