"""Saving and loading trained ensembles: safetensors weights + a YAML manifest.

Nothing here unpickles anything: weights are `safetensors` files, everything else is
YAML/JSON text. An ensemble directory holds::

    manifest.yaml          architecture, normalisation, EBI parameters, data set,
                           selection, training settings, seeds, metrics, member files
    member_00.safetensors  one file per member (state dict; header metadata names the
    member_01.safetensors  architecture and its configuration)
    ...

`load_ensemble` checks every member file against the SHA-256 in the manifest.

A calibration-marginalised ensemble (issue 23, docs/cnn.rst) records per member the draw
of the simulator priors its training sky was made with, ``prior_draw: {id, values}``
(members with the same ``id`` share a draw), and at the top level ``marginalisation``
(the priors and the method); `member_draw_ids` reads them.
"""

from __future__ import annotations

import datetime
import json
import os

from ..io.atomic import atomic_write
from ..utils.data import package_data
from ..utils.optional import require

__all__ = ["MANIFEST", "FORMAT", "default_weights_dir", "marginalised_weights_dir",
           "save_ensemble", "read_manifest", "member_draw_ids", "file_key", "load_members",
           "save_state", "load_state", "ManifestError"]

MANIFEST = "manifest.yaml"
FORMAT = "astro_clustermass-cnn-ensemble"
FORMAT_VERSION = 1


class ManifestError(ValueError):
    """An ensemble directory or manifest is missing, inconsistent or corrupt."""


def default_weights_dir():
    """Directory of the shipped default ensemble."""
    return package_data("cnn", "default")


def marginalised_weights_dir():
    """Directory of the shipped calibration-marginalised ensemble (``cnn-ensemble-
    marginalised``); it holds no manifest while no such ensemble is shipped."""
    return package_data("cnn", "marginalised")


def member_draw_ids(manifest):
    """The prior-draw id of every member, or None for an ensemble without prior draws.

    Raises `ManifestError` when only some members record a draw, or a draw lacks its
    ``id`` or ``values``.
    """
    draws = [m.get("prior_draw") for m in manifest["members"]]
    if all(d is None for d in draws):
        return None
    for i, d in enumerate(draws):
        if not (isinstance(d, dict) and isinstance(d.get("id"), int)
                and isinstance(d.get("values"), dict)):
            raise ManifestError(f"member {i}: prior_draw must be a mapping with an integer "
                                f"'id' and the drawn 'values' (every member, or none), got {d!r}")
    return [d["id"] for d in draws]


def save_state(path, tensors, metadata=None):
    """Write a dict of tensors to a safetensors file atomically (contiguous copies)."""
    require("safetensors", feature="the CNN ensemble's weights")
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    meta = {k: (v if isinstance(v, str) else json.dumps(v)) for k, v in (metadata or {}).items()}
    atomic_write(path, makedirs=True, writer=lambda tmp: save_file(tensors, tmp, metadata=meta))


def load_state(path):
    """Read a safetensors file: (dict of tensors, metadata dict of str)."""
    require("safetensors", feature="the CNN ensemble's weights")
    from safetensors import safe_open

    if not os.path.exists(path):
        raise FileNotFoundError(f"weights file {path!r} does not exist")
    tensors = {}
    try:
        with safe_open(path, framework="pt") as f:
            meta = dict(f.metadata() or {})
            for key in f.keys():
                tensors[key] = f.get_tensor(key)
    except Exception as exc:  # safetensors raises its own error types
        raise ManifestError(f"{path}: not a readable safetensors file ({exc})") from exc
    return tensors, meta


def _sha256(path):
    from .dataset import file_sha256

    return file_sha256(path)


def _plain(obj):
    from .dataset import _plain as plain

    return plain(obj)


def save_ensemble(out_dir, models, manifest, overwrite=False):
    """Write an ensemble directory.

    Parameters
    ----------
    out_dir : str
    models : list of `torch.nn.Module`
        The members (all of the architecture named in ``manifest['architecture']``).
    manifest : dict
        Must contain ``architecture`` ({name, config}), ``normalisation``,
        ``ebi_parameters``; anything else (data set, training, metrics) is kept.
        ``members`` is filled in here (file, sha256) merged with any per-member
        entries already present (seed, epochs, ...).
    overwrite : bool
        Replace an existing manifest in ``out_dir``.
    """
    import yaml

    for key in ("architecture", "normalisation", "ebi_parameters"):
        if key not in manifest:
            raise ManifestError(f"manifest lacks {key!r}")
    mpath = os.path.join(out_dir, MANIFEST)
    if os.path.exists(mpath) and not overwrite:
        raise FileExistsError(f"{mpath} exists; pass overwrite=True")
    os.makedirs(out_dir, exist_ok=True)
    arch = manifest["architecture"]
    old_members = list(manifest.get("members") or [{} for _ in models])
    if len(old_members) != len(models):
        raise ManifestError(f"manifest lists {len(old_members)} members for {len(models)} models")
    members = []
    for i, (model, info) in enumerate(zip(models, old_members)):
        fname = f"member_{i:02d}.safetensors"
        path = os.path.join(out_dir, fname)
        save_state(path, model.state_dict(), metadata={
            "format": FORMAT, "architecture": arch["name"],
            "config": json.dumps(_plain(arch.get("config", {})), sort_keys=True)})
        members.append({**_plain(info), "file": fname, "sha256": _sha256(path)})
    full = {"format": FORMAT, "format_version": FORMAT_VERSION,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            **_plain(manifest), "members": members}
    text = yaml.safe_dump(full, sort_keys=False, default_flow_style=None, width=100)
    def write(tmp):
        with open(tmp, "w") as fh:
            fh.write(text)
    atomic_write(mpath, write, makedirs=True)
    return mpath


def file_key(path):
    """(real path, modification time [ns], size [bytes]) of a file: changes when the file
    is replaced or rewritten, so it keys the per-process caches of manifests and loaded
    ensembles."""
    st = os.stat(path)
    return (os.path.realpath(path), st.st_mtime_ns, st.st_size)


#: Parsed manifests by `file_key` (a catalogue run builds one estimator per sky tile:
#: parsing the YAML each time cost a third of the run).
_MANIFEST_CACHE = {}


def read_manifest(weights_dir):
    """The manifest of an ensemble directory, as a dict (validated).

    Parsed once per process and file version (`file_key`); every call returns a copy.
    """
    import copy

    path = os.path.join(weights_dir, MANIFEST)
    if not os.path.isdir(weights_dir):
        raise ManifestError(f"ensemble directory {weights_dir!r} does not exist")
    if not os.path.exists(path):
        raise ManifestError(f"{weights_dir!r} has no {MANIFEST}; is it an ensemble directory?")
    key = file_key(path)
    if key not in _MANIFEST_CACHE:
        manifest = _parse_manifest(path)
        if len(_MANIFEST_CACHE) > 16:
            _MANIFEST_CACHE.clear()
        _MANIFEST_CACHE[key] = manifest
    return copy.deepcopy(_MANIFEST_CACHE[key])


def _parse_manifest(path):
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available
    with open(path) as fh:
        try:
            manifest = yaml.load(fh, Loader=loader)  # noqa: S506 - a safe loader
        except yaml.YAMLError as exc:
            raise ManifestError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ManifestError(f"{path}: not an {FORMAT} manifest")
    for key in ("architecture", "normalisation", "ebi_parameters", "members"):
        if key not in manifest:
            raise ManifestError(f"{path}: manifest lacks {key!r}")
    if not manifest["members"]:
        raise ManifestError(f"{path}: manifest lists no members")
    try:
        member_draw_ids(manifest)
    except ManifestError as exc:
        raise ManifestError(f"{path}: {exc}") from None
    return manifest


def load_members(weights_dir, manifest=None, verify=True):
    """Build the member networks of an ensemble directory with their weights.

    Returns
    -------
    models : list of `torch.nn.Module` (eval mode)
    manifest : dict
    """
    from .model import build_model

    manifest = manifest or read_manifest(weights_dir)
    arch = manifest["architecture"]
    models = []
    for info in manifest["members"]:
        path = os.path.join(weights_dir, info["file"])
        if verify and not info.get("sha256"):
            raise ManifestError(f"{path}: the manifest gives no sha256 for this member; "
                                "weights are loaded only when their checksum can be checked")
        if verify and _sha256(path) != info["sha256"]:
            raise ManifestError(f"{path}: SHA-256 differs from the manifest (corrupt or "
                                "replaced file)")
        tensors, meta = load_state(path)
        if meta.get("architecture", arch["name"]) != arch["name"]:
            raise ManifestError(f"{path} holds architecture {meta.get('architecture')!r}, "
                                f"manifest says {arch['name']!r}")
        model, _ = build_model(arch["name"], **arch.get("config", {}))
        try:
            model.load_state_dict(tensors, strict=True)
        except RuntimeError as exc:
            raise ManifestError(f"{path}: weights do not fit architecture {arch['name']!r}: "
                                f"{exc}") from exc
        model.eval()
        models.append(model)
    return models, manifest

