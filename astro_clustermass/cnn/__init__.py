"""The CNN ensemble mass estimator (seed 000: Krippendorf et al., eFEDS).

Importing this package does not import torch; the submodules do:

- `~astro_clustermass.cnn.model`: architectures (``seed000``, ``resnet-small``);
- `~astro_clustermass.cnn.losses`: Gaussian negative log-likelihood (seed 000 Eq. 1);
- `~astro_clustermass.cnn.train`: training of members and ensembles, checkpoints;
- `~astro_clustermass.cnn.ensemble`: combination by seed 000 Eqs. 2-3, fused inference;
- `~astro_clustermass.cnn.estimator`: the ``cnn-ensemble`` `~astro_clustermass.MassEstimator`;
- `~astro_clustermass.cnn.dataset` (no torch): training-set file format, split by
  cluster, normalisation;
- `~astro_clustermass.cnn.training_set` (no torch): training sets from simulator output;
- `~astro_clustermass.cnn.priors` (no torch): priors on the simulator's cluster model,
  drawn per training chunk;
- `~astro_clustermass.cnn.io`: safetensors weights + YAML manifest;
- `~astro_clustermass.cnn.metrics` (no torch): the figures reported for an ensemble;
- `~astro_clustermass.cnn.interpret`: member disagreement, gradient maps, core masking.

Its commands (``astro-clustermass train``, ``evaluate-ensemble``) live in
`astro_clustermass.cli`.
"""

from __future__ import annotations

import os
import sys

__all__ = ["builtin_estimator_specs", "passive_omp_wait"]


def passive_omp_wait():
    """Set ``OMP_WAIT_POLICY=PASSIVE`` for torch, unless torch is imported or the user
    set the variable.

    torch's OpenMP threads spin while they wait for each other. When another process
    holds one of the cores (a shared machine, several Dask workers, a simulation next to
    the training) the spinning threads wait for a descheduled partner and training and
    inference ran 2-10 times slower on the 2-core development machine; passive waiting
    cost 9 % (inference) to 30 % (training) on a free one (benchmarks/bench_cnn.py
    --wait-policy-check, docs/performance.rst). The OpenMP runtime reads the variable
    when torch is first imported, so it is set just before: `_TorchImportHook` calls
    this when a module of astro_clustermass imports torch. Importing the package (for
    the scaling relations, say) sets nothing.
    """
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


class _TorchImportHook:
    """A `sys.meta_path` finder that finds nothing: it calls `passive_omp_wait` when a
    module of astro_clustermass is about to import torch, then leaves ``sys.meta_path``.

    torch is imported at the top of several modules of this package; this way none of
    them has to remember the variable, and torch imported by anyone else is left alone.
    """

    def find_spec(self, name, path=None, target=None):
        if name == "torch" and _imported_by_this_package():
            passive_omp_wait()
        if "torch" in sys.modules or name == "torch" and _imported_by_this_package():
            _remove_hook()
        return None  # the usual finders import it


def _imported_by_this_package():
    frame = sys._getframe(2)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if not module.startswith(("importlib", "_frozen_importlib")) and module != __name__:
            return module == "astro_clustermass" or module.startswith("astro_clustermass.")
        frame = frame.f_back
    return False


def _remove_hook():
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _TorchImportHook)]


if "torch" not in sys.modules and not any(isinstance(f, _TorchImportHook)
                                          for f in sys.meta_path):
    sys.meta_path.insert(0, _TorchImportHook())


def builtin_estimator_specs():
    """The `~astro_clustermass.core.EstimatorSpec` of ``cnn-ensemble`` and
    ``cnn-ensemble-marginalised`` (imports no torch).

    The second is listed with ``UNAVAILABLE`` and the reason in its description while no
    calibration-marginalised weights are shipped; its factory is then
    `~astro_clustermass.cnn.estimator.marginalised_unavailable`, which raises
    `~astro_clustermass.utils.exceptions.EstimatorUnavailable` unless ``weights=`` names an
    ensemble trained on simulator-prior draws, and which takes no ``events=``/``images=``
    (so ``estimate --events/--images`` skip it with the reason).
    """
    from ..core import EstimatorSpec
    from .io import MANIFEST, marginalised_weights_dir

    shipped = os.path.exists(os.path.join(marginalised_weights_dir(), MANIFEST))
    marginalised = ("CNN ensemble trained on simulator-prior draws; sigma split into "
                    "statistical (_err_stat) and model (_err_model) parts")
    factory = "astro_clustermass.cnn.estimator:CNNMarginalisedEstimator"
    unavailable = ""
    if not shipped:
        unavailable = "no calibration-marginalised weights are shipped yet (issue 23)"
        marginalised = ("UNAVAILABLE: no calibration-marginalised weights are shipped yet "
                        "(issue 23); weights=DIR uses one you trained. " + marginalised)
        factory = "astro_clustermass.cnn.estimator:marginalised_unavailable"
    return [EstimatorSpec(
        name="cnn-ensemble",
        factory="astro_clustermass.cnn.estimator:CNNEnsembleEstimator",
        inputs=("z", "RA", "DEC"),
        description=("CNN ensemble (seed 000) on 50x50x10 energy-band images + redshift; "
                     "needs images=, image_column= or events= (event files)"),
        version="1",
    ), EstimatorSpec(
        name="cnn-ensemble-marginalised",
        factory=factory,
        inputs=("z", "RA", "DEC"),
        description=marginalised,
        version="1",
        unavailable=unavailable,
    )]
