"""The ``cnn-ensemble`` mass estimator (imports torch).

Reads an energy-band image (EBI) of every cluster plus its redshift and returns the
ensemble's Gaussian in log10 M500c (seed 000 Eqs. 2-3). Images come from one of:

- ``images=``: an array ``(N, ny, nx, nbands)`` in catalogue order, or the path of an HDF5
  file holding one (a training data set of `astro_clustermass.cnn.dataset`, or an EBI
  stack written by `astro_clustermass.ebi`);
- ``image_column=``: a multi-dimensional catalogue column of cubes;
- ``events=``: an event list (or event-file paths): the EBIs are built at each row's
  RA/DEC with `astro_clustermass.ebi` using the ensemble's own EBI parameters.

Images whose EBI parameters differ from those the ensemble was trained with (manifest
``ebi_parameters``) are refused with `EBIParameterMismatch`.

An ensemble whose members were trained on skies drawn from the simulator priors
(manifest ``prior_draw`` per member, issue 23) splits each sigma into a statistical and
a model (calibration) part (`split_sigma`), written as ``log10M500c_NAME_err_stat`` and
``log10M500c_NAME_err_model``; ``cnn-ensemble-marginalised``
(`CNNMarginalisedEstimator`) is the name of the shipped one, unavailable while none is
shipped.
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np

from ..core import MassEstimator
from ..utils.exceptions import EstimatorUnavailable, InputDataWarning
from ..utils.optional import require
from .dataset import Normalisation
from .io import (
    MANIFEST,
    ManifestError,
    default_weights_dir,
    marginalised_weights_dir,
    member_draw_ids,
    read_manifest,
)

__all__ = ["CNNEnsembleEstimator", "CNNMarginalisedEstimator", "EBIParameterMismatch",
           "compare_ebi_parameters", "marginalised_unavailable", "split_sigma"]


#: Catalogue columns used as EBI cubes when no image source is given.
_IMAGE_COLUMNS = ("ebi", "EBI", "gsm_3dImgs")


class EBIParameterMismatch(ValueError):
    """Input images were made with EBI parameters other than the ensemble's."""


def split_sigma(mu, sigma, draw_ids):
    """The two parts of the ensemble sigma of members trained on different prior draws.

    With members grouped by the prior draw of their training sky (group *g*: members
    trained on draw *g*, mean :math:`\\mu_g`), the mixture variance of seed 000 Eq. 3
    splits exactly (law of total variance, member weights ``1/M``):

    - model (calibration) part: the spread of the draws' means,
      :math:`\\sigma_{model}^2 = \\sum_g w_g (\\mu_g - \\mu_*)^2`;
    - statistical part: the members' own variance plus their disagreement within a draw,
      :math:`\\sigma_{stat}^2 = \\langle\\sigma_i^2\\rangle + \\sum_g w_g
      \\mathrm{var}_{i \\in g}(\\mu_i)`;

    so :math:`\\sigma_{stat}^2 + \\sigma_{model}^2 = \\sigma_*^2`. With one member per
    draw the networks' disagreement from their initialisation (0.02 dex for the shipped
    ensemble) is counted in the model part; with one draw for all members the model part
    is 0.

    Parameters
    ----------
    mu, sigma : arrays (M, N)
        Member means and standard deviations [dex].
    draw_ids : sequence of M ints
        The prior draw of each member.

    Returns
    -------
    sigma_stat, sigma_model : arrays (N,) [dex]
    """
    mu = np.asarray(mu, float)
    sigma = np.asarray(sigma, float)
    ids = np.asarray(draw_ids)
    if ids.shape != (mu.shape[0],):
        raise ValueError(f"{ids.size} draw ids for {mu.shape[0]} members")
    mean = mu.mean(axis=0)
    var_model = np.zeros(mu.shape[1:])
    var_within = np.zeros(mu.shape[1:])
    for g in np.unique(ids):
        sel = ids == g
        w = sel.sum() / ids.size
        mg = mu[sel].mean(axis=0)
        var_model += w * (mg - mean) ** 2
        var_within += w * ((mu[sel] - mg) ** 2).mean(axis=0)
    var_stat = (sigma ** 2).mean(axis=0) + var_within
    return np.sqrt(var_stat), np.sqrt(var_model)


def _normalise_params(d):
    if d is None:
        return None
    if hasattr(d, "to_dict"):
        d = d.to_dict()
    from .dataset import _plain

    return _plain(dict(d))


def _equal(a, b):
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) \
            and not isinstance(a, bool) and not isinstance(b, bool):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


#: Loaded ensembles by directory, device and file versions: estimators built again and
#: again in one process (one per sky tile in `astro_clustermass.parallel`) share the
#: networks instead of reading and checking the weights each time.
_ENSEMBLE_CACHE = {}


def _load_ensemble(weights, device):
    require("torch", feature="the CNN ensemble")
    from .ensemble import Ensemble
    from .io import MANIFEST, file_key

    manifest = read_manifest(weights)
    files = [os.path.join(weights, MANIFEST)] + [os.path.join(weights, m["file"])
                                                 for m in manifest["members"]]
    try:
        key = (str(device), tuple(file_key(f) for f in files))
    except OSError:  # a member file is missing: let Ensemble.load say which
        return Ensemble.load(weights, device=device)
    if key not in _ENSEMBLE_CACHE:
        if len(_ENSEMBLE_CACHE) >= 4:
            _ENSEMBLE_CACHE.clear()
        _ENSEMBLE_CACHE[key] = Ensemble.load(weights, device=device)
    return _ENSEMBLE_CACHE[key]


def compare_ebi_parameters(expected, given, what="input images"):
    """Raise `EBIParameterMismatch` naming every parameter that differs.

    Parameters
    ----------
    expected : dict or EBIParameters
        The ensemble's (manifest) parameters.
    given : dict or EBIParameters
        The parameters of the images offered.
    what : str
        Description of the images, for the message.
    """
    e, g = _normalise_params(expected), _normalise_params(given)
    if e is None or g is None:
        return
    diffs = []
    for key in sorted(set(e) | set(g)):
        if key not in g:
            diffs.append(f"{key}: missing (ensemble: {e[key]!r})")
        elif key not in e:
            diffs.append(f"{key}: {g[key]!r} (not an EBI parameter of the ensemble)")
        elif not _equal(e[key], g[key]):
            diffs.append(f"{key}: {g[key]!r} (ensemble: {e[key]!r})")
    if diffs:
        raise EBIParameterMismatch(
            f"{what} were made with EBI parameters that differ from those the CNN ensemble "
            f"was trained with: {'; '.join(diffs)}. Rebuild the images with the ensemble's "
            "parameters (pass events= to let the estimator build them) or use an ensemble "
            "trained on such images.")


def _read_image_file(path):
    """Images and EBI parameters (dict or None) from an HDF5 file."""
    require("h5py", feature="reading images from HDF5 files")
    import h5py
    import yaml

    if not os.path.exists(path):
        raise FileNotFoundError(f"image file {path!r} does not exist")
    from ..io.ebi_stack import read_ebi_stack

    try:
        stack = read_ebi_stack(path)
    except KeyError:  # no 'ebi' data set: the generic reader below looks for others
        stack = None
    if stack is not None:
        return np.asarray(stack.images), _normalise_params(stack.params)
    with h5py.File(path, "r") as f:
        key = next((k for k in ("ebi", "images", "gsm_3dImgs") if k in f), None)
        if key is None:
            raise KeyError(f"{path}: no EBI data set (looked for ebi, images, gsm_3dImgs); "
                           f"keys: {list(f)}")
        images = f[key][...]
        params = f.attrs.get("ebi_parameters", None)
        if params is None and "ebi_parameters" in f[key].attrs:
            params = f[key].attrs["ebi_parameters"]
    if isinstance(params, bytes):
        params = params.decode()
    if isinstance(params, str):
        params = yaml.safe_load(params)
    return images, params


class CNNEnsembleEstimator(MassEstimator):
    """M500c from energy-band images and redshift with a CNN ensemble (seed 000).

    Parameters
    ----------
    weights : str, optional
        Ensemble directory (``manifest.yaml`` + ``member_XX.safetensors``); default the
        shipped ensemble (`astro_clustermass.cnn.io.default_weights_dir`).
    images : array (N, ny, nx, nbands) or str, optional
        EBIs in catalogue row order, or an HDF5 file holding them.
    image_column : str, optional
        Catalogue column holding one EBI cube per row.
    events : EventList, str or list of str, optional
        Event list(s) to build EBIs from at each row's RA/DEC.
    ebi_parameters : EBIParameters or dict, optional
        Parameters of ``images``/``image_column`` when they cannot be read from a file;
        checked against the manifest.
    device : str
        torch device ("cpu").
    batch_size : int
        Clusters per normalisation chunk.
    threads : int, optional
        ``torch.set_num_threads`` for inference.
    progress : bool
        tqdm progress bars.

    Notes
    -----
    Rows without an image (all-NaN cube, or no photon at all in the EBI, e.g. a
    position outside the event files) have no estimate and say why. Rows whose redshift
    or predicted mass lies outside the training set's range keep their estimate with a
    warning in the flag column.
    """

    name = "cnn-ensemble"
    inputs = ("z", "RA", "DEC")
    optional_inputs = ()
    reference = ("Krippendorf et al. 2024, A&A 681, A112, 'The eROSITA Final Equatorial-Depth "
                 "Survey (eFEDS): A machine learning approach to infer galaxy cluster masses "
                 "from eROSITA X-ray images' (arXiv:2305.00016)")
    description = "CNN ensemble on energy-band images + redshift (seed 000)"

    def __init__(self, weights=None, images=None, image_column=None, events=None,
                 ebi_parameters=None, device="cpu", batch_size=1024, threads=None,
                 progress=False):
        sources = [s is not None for s in (images, image_column, events)]
        if sum(sources) > 1:
            raise ValueError("give at most one of images=, image_column=, events=")
        self.weights = os.path.abspath(weights or default_weights_dir())
        self._load_error = None
        try:
            self.manifest = read_manifest(self.weights)  # clear ManifestError if bad
        except Exception as exc:
            if weights is not None:
                raise
            # The shipped ensemble is missing (e.g. a stripped install): listing and
            # "run all that can" must still work; the error surfaces on estimation.
            self._load_error = exc
            self.manifest = {"normalisation": Normalisation().to_dict(), "ebi_parameters": None,
                             "architecture": {"name": "seed000"}, "members": []}
        self.version = str(self.manifest.get("name", "")) + "@" + str(
            self.manifest.get("created", ""))
        self.normalisation = Normalisation.from_dict(self.manifest["normalisation"])
        self.ebi_parameters = _normalise_params(self.manifest["ebi_parameters"])
        self.device = device
        self.batch_size = int(batch_size)
        self.threads = threads
        self.progress = progress
        self._ensemble = None
        self._images = None
        self._image_column = image_column
        self._events = events
        if images is not None:
            if isinstance(images, (str, os.PathLike)):
                arr, params = _read_image_file(os.fspath(images))
                if params is None:
                    warnings.warn(f"image file {images} does not record its EBI parameters; "
                                  "assuming the ensemble's", InputDataWarning, stacklevel=2)
                compare_ebi_parameters(self.ebi_parameters, params or ebi_parameters,
                                       f"images in {images}")
                self._images = arr
            else:
                self._images = images
        if ebi_parameters is not None:
            compare_ebi_parameters(self.ebi_parameters, ebi_parameters, "the given images")
        if self._images is not None:
            self._check_shape(np.shape(self._images), "images")
        if events is None:
            if images is not None or image_column is not None:
                self.inputs = ("z",)
                self.optional_inputs = ("RA", "DEC")
        self.last_members = None

    def unavailable(self, table, column_map=None):
        """Why there are no images for ``table``: none of ``images=``, ``image_column=``,
        ``events=`` was given and the table has no cube column (``ebi``, ``EBI``,
        ``gsm_3dImgs``); else ``''``."""
        if self._images is not None or self._image_column is not None \
                or self._events is not None:
            return ""
        for name in _IMAGE_COLUMNS:
            name = (column_map or {}).get(name, name)
            if name in table.colnames and np.ndim(table[name]) == 4:
                return ""
        return ("it needs energy-band images: event files (events=, --events), images "
                "(images=, --images) or an image column")

    # -- helpers ----------------------------------------------------------------------
    @property
    def image_shape(self):
        shape = self.manifest.get("input", {}).get("image_shape")
        return tuple(shape) if shape else None

    def _check_shape(self, shape, what):
        expected = self.image_shape
        if len(shape) != 4:
            raise ValueError(f"{what} must have shape (N, ny, nx, nbands); got {tuple(shape)}")
        if expected is not None and tuple(shape[1:]) != expected:
            raise EBIParameterMismatch(
                f"{what} have cubes of shape {tuple(shape[1:])}, the ensemble was trained on "
                f"{expected} (y, x, band); they were made with other EBI parameters")

    @property
    def ensemble(self):
        """The loaded `~astro_clustermass.cnn.ensemble.Ensemble` (loaded on first use)."""
        if self._ensemble is None:
            self._ensemble = _load_ensemble(self.weights, self.device)
        return self._ensemble

    def parameters(self):
        return {
            "weights": self.weights,
            "ensemble": self.manifest.get("name"),
            "created": self.manifest.get("created"),
            "architecture": self.manifest["architecture"]["name"],
            "n_members": len(self.manifest["members"]),
            "member_sha256": [m.get("sha256") for m in self.manifest["members"]],
            "ebi_parameters": self.ebi_parameters,
            "image_source": ("images" if self._images is not None else "image_column"
                             if self._image_column else "events" if self._events is not None
                             else "none"),
        }

    def _get_images(self, view):
        n = len(view)
        if self._images is not None:
            if len(self._images) != n:
                raise ValueError(f"images= holds {len(self._images)} cubes for a catalogue of "
                                 f"{n} rows")
            return self._images
        if self._image_column is not None:
            col = view.column(self._image_column)
            arr = np.asarray(getattr(col, "value", col), dtype=np.float32)
            mask = getattr(col, "mask", None)
            if mask is not None and np.any(mask):
                arr = np.where(np.asarray(mask), np.nan, arr)
            self._check_shape(arr.shape, f"column {self._image_column!r}")
            return arr
        if self._events is not None:
            return self._images_from_events(view)
        from ..catalog import MissingColumnError

        for name in _IMAGE_COLUMNS:
            try:
                col = view.column(name)
            except MissingColumnError:
                continue
            if np.ndim(col) == 4:
                arr = np.asarray(getattr(col, "value", col), dtype=np.float32)
                self._check_shape(arr.shape, f"column {name!r}")
                # a table read with format='ebi-stack' says how its cubes were made
                compare_ebi_parameters(self.ebi_parameters,
                                       view._table.meta.get("ebi_parameters"),
                                       f"images in column {name!r}")
                return arr
        raise ValueError("cnn-ensemble needs energy-band images: pass images=, image_column= "
                         "or events= (event list or event files to build them from)")

    def _images_from_events(self, view):
        from .. import ebi as _ebi
        from ..io.events import as_event_list

        params = _ebi.EBIParameters.from_dict(self.ebi_parameters)
        events = as_event_list(self._events)
        ra = view["RA"].value
        dec = view["DEC"].value
        ok = np.isfinite(ra) & np.isfinite(dec)
        images = np.full((len(view), *self.image_shape), np.nan, dtype=np.float32)
        if ok.any():
            import astropy.units as u
            from astropy.coordinates import SkyCoord

            centers = SkyCoord(ra[ok] * u.deg, dec[ok] * u.deg)
            images[ok] = _ebi.energy_band_images(events, centers, params=params)
        return images

    # -- estimation -------------------------------------------------------------------
    def _predict(self, view):
        require("torch", feature="the CNN ensemble")
        import torch

        if self._load_error is not None:
            raise self._load_error

        images = self._get_images(view)
        z = view["z"].value
        n = len(view)
        reason = np.array([""] * n, dtype=object)
        has_image = np.ones(n, dtype=bool)
        for s in range(0, n, 4096):
            block = np.asarray(images[s:s + 4096], dtype=np.float32)
            nan = np.isnan(block).all(axis=(1, 2, 3))
            empty = ~nan & (np.nansum(block, axis=(1, 2, 3)) <= 0)
            has_image[s:s + 4096] = ~(nan | empty)
            for i in np.flatnonzero(nan):
                reason[s + i] = "no energy-band image (outside the event files?)"
            for i in np.flatnonzero(empty):
                reason[s + i] = "no photons in the energy-band image"
        use = has_image & view.row_valid
        m = len(self.manifest["members"])
        mu = np.full((m, n), np.nan)
        sig = np.full((m, n), np.nan)
        if use.any():
            old = torch.get_num_threads()
            if self.threads:
                torch.set_num_threads(int(self.threads))
            try:
                idx = np.flatnonzero(use)
                imgs = images if len(idx) == n else images[idx]
                mu[:, idx], sig[:, idx] = self.ensemble.predict_members(
                    np.nan_to_num(np.asarray(imgs, np.float32)), z[idx],
                    batch_size=self.batch_size, progress=self.progress)
            finally:
                torch.set_num_threads(old)
        return mu, sig, use, reason

    def predict_members(self, table, column_map=None):
        """Per-member predictions for every row of ``table``.

        Returns
        -------
        mu, sigma : arrays (M, N) [dex]; NaN for rows without an estimate.
        """
        from ..catalog import CatalogView

        view = CatalogView(table, required=self.inputs, optional=self.optional_inputs,
                           column_map=column_map)
        mu, sig, _, _ = self._predict(view)
        return mu, sig

    def member_table(self, table, column_map=None):
        """An `~astropy.table.Table` of the member predictions and their disagreement.

        Columns: ``mu_members`` (N, M), ``sigma_members`` (N, M) [dex], ``member_std``
        (standard deviation of the member means) and ``member_range`` (max - min of the
        member means, the seed's Delta mu) [dex].
        """
        from astropy.table import Table

        mu, sig = self.predict_members(table, column_map)
        with np.errstate(invalid="ignore"):
            return Table({"mu_members": mu.T, "sigma_members": sig.T,
                          "member_std": np.std(mu, axis=0),
                          "member_range": np.max(mu, axis=0) - np.min(mu, axis=0)},
                         meta={"unit": "dex of M500c/Msun"})

    @property
    def draw_ids(self):
        """The prior draw of each member (manifest ``prior_draw``), or None."""
        return member_draw_ids(self.manifest) if self.manifest["members"] else None

    def estimate(self, table, column_map=None):
        """`MassEstimator.estimate`, plus ``err_stat`` / ``err_model`` for an ensemble
        trained on prior draws (`split_sigma`)."""
        import dataclasses

        result = super().estimate(table, column_map=column_map)
        ids = self.draw_ids
        if ids is None or self.last_members is None:
            return result
        stat, model = split_sigma(*self.last_members, ids)
        meta = dict(result.meta, extra_descriptions={
            "err_stat": "statistical part of sigma of log10(M500c / Msun): members' own "
                        "sigma and their disagreement within a prior draw",
            "err_model": "model (calibration) part of sigma: spread of the members' means "
                         "across the simulator-prior draws of their training skies; shared "
                         "by clusters, does not average down"})
        return dataclasses.replace(result, meta=meta,
                                   extra={"err_stat": stat, "err_model": model})

    def _estimate(self, view):
        require("torch", feature="the CNN ensemble")  # before .ensemble imports it
        from .ensemble import combine

        mu, sig, use, reason = self._predict(view)
        mean, sstar = combine(mu, sig)
        self.last_members = (mu, sig)
        ds = self.manifest.get("dataset", {})
        zr = ds.get("z_range")
        mr = ds.get("log10M500c_range")
        z = view["z"].value
        for i in np.flatnonzero(use):
            notes = []
            if zr and not (zr[0] <= z[i] <= zr[1]):
                notes.append(f"z={z[i]:.3g} outside the training range [{zr[0]}, {zr[1]}]")
            if mr and not (mr[0] <= mean[i] <= mr[1]):
                notes.append(f"predicted log10 M={mean[i]:.2f} outside the training range "
                             f"[{mr[0]}, {mr[1]}]")
            if notes:
                reason[i] = "; ".join(notes)
        return mean, sstar, use, reason.astype(str)

    def provenance(self):
        prov = super().provenance()
        if self.last_members is not None:
            mu = self.last_members[0]
            with np.errstate(invalid="ignore"):
                spread = np.nanmean(np.std(mu, axis=0)) if np.isfinite(mu).any() else None
            prov["member_spread_mean_dex"] = None if spread is None else float(spread)
        ids = self.draw_ids if not self._load_error else None
        if ids is None:
            prov["sigma_model"] = (
                "not estimated (0): the members were trained at one setting of the "
                "simulator's cluster model, so sigma is statistical only; a sky whose "
                "cluster physics differs moves the masses without moving sigma (issue 23, "
                "docs/cnn.rst)")
        else:
            marg = self.manifest.get("marginalisation", {})
            prov["sigma_model"] = (
                f"spread of the member means across {len(set(ids))} simulator-prior draws "
                f"({marg.get('priors_name', 'priors in the manifest')}); columns _err_stat "
                "and _err_model, _err = their quadrature sum")
        return prov


def marginalised_unavailable(weights=None, **options):
    """The factory of ``cnn-ensemble-marginalised`` while no weights are shipped.

    Raises `EstimatorUnavailable` unless ``weights`` names an ensemble trained on prior
    draws (then the same as ``CNNMarginalisedEstimator(weights, **options)``). It names
    no image source among its parameters, so that commands which hand photons or images
    to every estimator that takes them (``astro-clustermass estimate --events/--images``)
    skip it with its reason instead of failing.
    """
    if weights is None:
        CNNMarginalisedEstimator()      # raises EstimatorUnavailable with the reason
    return CNNMarginalisedEstimator(weights=weights, **options)


class CNNMarginalisedEstimator(CNNEnsembleEstimator):
    """The calibration-marginalised CNN ensemble (``cnn-ensemble-marginalised``, issue 23).

    The same estimator as `CNNEnsembleEstimator`, for an ensemble whose members were trained
    on skies drawn from the simulator priors (`astro_clustermass.cnn.priors`): its sigma
    carries the model (calibration) uncertainty, split per cluster into
    ``log10M500c_cnn-ensemble-marginalised_err_stat`` and ``..._err_model``.

    Parameters
    ----------
    weights : str, optional
        Ensemble directory; default the shipped one
        (`astro_clustermass.cnn.io.marginalised_weights_dir`). Its manifest must record a
        prior draw per member.
    images, image_column, events, ebi_parameters, device, batch_size, threads, progress
        As `CNNEnsembleEstimator`.

    Raises
    ------
    EstimatorUnavailable
        No ``weights`` given and no marginalised ensemble is shipped.
    ManifestError
        The ensemble's members record no prior draws (it is not marginalised).
    """

    name = "cnn-ensemble-marginalised"
    description = ("calibration-marginalised CNN ensemble (members trained on simulator-prior "
                   "draws); sigma split into statistical and model parts")

    def __init__(self, weights=None, images=None, image_column=None, events=None,
                 ebi_parameters=None, device="cpu", batch_size=1024, threads=None,
                 progress=False):
        if weights is None:
            weights = marginalised_weights_dir()
            if not os.path.exists(os.path.join(weights, MANIFEST)):
                raise EstimatorUnavailable(
                    "cnn-ensemble-marginalised: no calibration-marginalised weights are "
                    f"shipped yet ({weights} holds no {MANIFEST}; issue 23: the ensemble is "
                    "to be trained on the realistic training sky). Pass weights=DIR of an "
                    "ensemble trained on prior draws, or use cnn-ensemble")
        super().__init__(weights=weights, images=images, image_column=image_column,
                         events=events, ebi_parameters=ebi_parameters, device=device,
                         batch_size=batch_size, threads=threads, progress=progress)
        if self.draw_ids is None:
            raise ManifestError(
                f"{self.weights}: not a calibration-marginalised ensemble: its members "
                "record no prior_draw (use cnn-ensemble for it)")
