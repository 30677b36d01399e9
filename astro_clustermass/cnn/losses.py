"""Loss of the CNN mass estimator (imports torch).

Gaussian negative log-likelihood of seed 000, Eq. (1):

.. math::

    -\\log p_\\theta(y_n | x_n) = \\frac{\\log \\sigma_\\theta^2(x_n)}{2}
        + \\frac{(y_n - \\mu_\\theta(x_n))^2}{2 \\sigma_\\theta^2(x_n)} + \\mathrm{const},

averaged over the batch, optionally with per-sample weights (seed 000 sect. 4: weights
that make the effective mass distribution uniform). The constant ``log(2 pi) / 2`` is
omitted unless ``full=True``.

`mean_squared_error` of the mean alone is the loss of the MSE pre-training (seed 003
sect. 3.6; seed 001 Table 4 trained with it only).
"""

from __future__ import annotations

import math

import torch

__all__ = ["gaussian_nll", "mean_squared_error"]


def mean_squared_error(mu, y, weight=None):
    """Mean (weighted: ``sum(w d^2) / sum(w)``) of ``(y - mu)^2``; scalar tensor."""
    d2 = (y - mu) ** 2
    if weight is None:
        return d2.mean()
    weight = weight.to(d2.dtype)
    return (weight * d2).sum() / weight.sum()


def gaussian_nll(mu, sigma, y, weight=None, full=False):
    """Mean Gaussian negative log-likelihood (seed 000 Eq. 1).

    Parameters
    ----------
    mu, sigma, y : `torch.Tensor`, shape (N,)
        Predicted mean, predicted standard deviation (> 0) and target.
    weight : `torch.Tensor`, shape (N,), optional
        Per-sample weights; the result is ``sum(w * nll) / sum(w)``.
    full : bool
        Add the constant ``log(2 pi) / 2``.

    Returns
    -------
    `torch.Tensor` (scalar)
    """
    var = sigma * sigma
    nll = 0.5 * torch.log(var) + (y - mu) ** 2 / (2.0 * var)
    if full:
        nll = nll + 0.5 * math.log(2.0 * math.pi)
    if weight is None:
        return nll.mean()
    weight = weight.to(nll.dtype)
    return (weight * nll).sum() / weight.sum()
