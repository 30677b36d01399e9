"""Estimator registry: built-in estimators and third-party plugins.

A plugin is any installed distribution that declares an entry point in the group
``astro_clustermass.estimators`` pointing at a module (or object) with a pluggy hook
implementation of `EstimatorHookSpecs.astro_clustermass_estimators`, which returns a
list of `~astro_clustermass.core.EstimatorSpec` (or `MassEstimator` subclasses).

Each plugin is loaded on its own: one that fails to import, raises, calls ``sys.exit``,
blocks for longer than the import time limit, or returns nonsense is reported (name,
distribution, error) and the others still work (`astro_clustermass.guard.contained_call`;
the limit is ``ASTRO_CLUSTERMASS_PLUGIN_TIMEOUT`` or ``guard.conf.plugin_timeout``, 60 s). In strict
mode the first such failure raises instead. Plugins can be blocked by name or
distribution. Listing plugins reads only their specs, so it does not import torch.

Configuration (environment variables win over `conf`):

- ``ASTRO_CLUSTERMASS_STRICT_PLUGINS=1`` or ``conf.strict_plugins = True``
- ``ASTRO_CLUSTERMASS_DISABLE_PLUGINS=name1,dist2`` or ``conf.disabled_plugins``
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import warnings
from dataclasses import dataclass, field

import pluggy
from astropy import config as _config
from astropy.table import QTable

from .catalog import check_estimator_name
from .core import EstimatorError, EstimatorSpec, MassEstimator
from .guard import contained_call, plugin_import_timeout
from .utils.exceptions import PluginWarning
from .utils.logger import log

__all__ = [
    "ENTRY_POINT_GROUP", "hookimpl", "hookspec", "EstimatorHookSpecs", "EstimatorHookimpl",
    "PluginRecord",
    "PluginError", "DuplicateEstimatorError", "UnknownEstimatorError", "Registry",
    "default_registry", "conf",
]


#: Entry-point group a third-party package uses to register estimators.
ENTRY_POINT_GROUP = "astro_clustermass.estimators"

hookspec = pluggy.HookspecMarker("astro_clustermass")


class EstimatorHookimpl(pluggy.HookimplMarker):
    """The decorator ``@hookimpl`` of a plugin's ``astro_clustermass_estimators`` function.

    A plugin's light module (the one its entry point names) defines::

        from astro_clustermass import EstimatorSpec, hookimpl

        @hookimpl
        def astro_clustermass_estimators():
            return [EstimatorSpec(name="my-estimator",
                                  factory="my_plugin.estimator:MyEstimator",
                                  inputs=("z", "LX"))]

    The function takes no argument and returns a list of
    `~astro_clustermass.EstimatorSpec` (listing plugins then imports nothing else) or of
    `~astro_clustermass.MassEstimator` subclasses (their ``name``, ``inputs``,
    ``description`` and ``version`` make the spec). A function without the decorator is
    reported as a broken plugin. See :ref:`plugins`.
    """


#: The decorator of a plugin's hook (`EstimatorHookimpl`); also ``astro_clustermass.hookimpl``.
hookimpl = EstimatorHookimpl("astro_clustermass")

#: Built-in estimator providers, loaded like plugins (each isolated); each module
#: has a light ``builtin_estimator_specs()`` returning its `EstimatorSpec` list.
BUILTIN_PROVIDERS = ("astro_clustermass.relations", "astro_clustermass.cnn")

#: Distribution name of the built-in estimators.
_BUILTIN = "astro_clustermass"


class Conf(_config.ConfigNamespace):
    """Configuration of the plugin registry (``[registry]`` in astro_clustermass.cfg)."""

    strict_plugins = _config.ConfigItem(
        False, "Raise on the first plugin that fails to load instead of reporting it.")
    disabled_plugins = _config.ConfigItem(
        [], "Entry-point or distribution names of plugins not to load.", cfgtype="string_list")


conf = Conf()


class PluginError(EstimatorError):
    """A plugin failed to load or returned something invalid (strict mode)."""


class DuplicateEstimatorError(EstimatorError):
    """Two providers registered the same estimator name."""


class UnknownEstimatorError(KeyError):
    """No estimator of that name is registered."""

    def __str__(self):
        return str(self.args[0])


class EstimatorHookSpecs:
    """Hooks a plugin implements (decorate with `hookimpl`)."""

    @hookspec
    def astro_clustermass_estimators(self):
        """Return the estimators this plugin provides.

        Returns
        -------
        list of `~astro_clustermass.core.EstimatorSpec` or `MassEstimator` subclasses
        """


@dataclass
class PluginRecord:
    """What happened when a plugin (or built-in provider) was loaded."""

    name: str
    distribution: str
    version: str
    status: str  # "ok", "error", "blocked"
    error: str = ""
    estimators: list = field(default_factory=list)


def _env_flag(name):
    value = os.environ.get(name)
    if value is None:
        return None
    return value.strip().lower() not in ("", "0", "false", "no", "off")


def _spec_from(obj, package, version):
    """Normalise what a hook returned into an EstimatorSpec."""
    if isinstance(obj, EstimatorSpec):
        spec = obj
    elif isinstance(obj, type) and issubclass(obj, MassEstimator):
        spec = EstimatorSpec(name=obj.name, factory=obj, inputs=tuple(obj.inputs),
                             description=obj.description or (obj.__doc__ or "").strip()
                             .split("\n")[0], version=str(obj.version))
    else:
        raise PluginError(
            f"returned {type(obj).__name__!s} {obj!r:.80}; expected EstimatorSpec or a "
            "MassEstimator subclass"
        )
    try:
        check_estimator_name(spec.name)
    except ValueError as exc:
        raise PluginError(str(exc)) from None
    return EstimatorSpec(spec.name, spec.factory, tuple(spec.inputs), spec.description,
                         spec.version or version, spec.package or package,
                         str(getattr(spec, "unavailable", "") or ""))


class Registry:
    """Discovered estimators and the fate of every plugin.

    Parameters
    ----------
    strict : bool, optional
        Raise `PluginError` on the first failing plugin (default from configuration).
    disabled : iterable of str, optional
        Entry-point or distribution names not to load (default from configuration).
    builtins : bool
        Include the package's own estimators.
    entry_points : iterable of `importlib.metadata.EntryPoint`, optional
        Plugins to load instead of those installed (for tests).
    """

    def __init__(self, strict=None, disabled=None, builtins=True, entry_points=None):
        env_strict = _env_flag("ASTRO_CLUSTERMASS_STRICT_PLUGINS")
        self.strict = bool(strict if strict is not None
                           else env_strict if env_strict is not None else conf.strict_plugins)
        if disabled is None:
            env = os.environ.get("ASTRO_CLUSTERMASS_DISABLE_PLUGINS")
            disabled = env.split(",") if env is not None else conf.disabled_plugins
        self.disabled = {d.strip() for d in disabled if d.strip()}
        self.plugins: list[PluginRecord] = []
        #: (spec, why) of estimators a plugin offered under a built-in estimator's name.
        self.refused: list[tuple[EstimatorSpec, str]] = []
        self._specs: dict[str, list[EstimatorSpec]] = {}
        self._pm = pluggy.PluginManager("astro_clustermass")
        self._pm.add_hookspecs(EstimatorHookSpecs)
        from . import __version__

        if builtins:
            for module in BUILTIN_PROVIDERS:
                self._load(module, _BUILTIN, __version__,
                           lambda module=module:
                           importlib.import_module(module).builtin_estimator_specs)
        if entry_points is None:
            entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        for ep in entry_points:
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else "unknown"
            dist_version = dist.version if dist is not None else ""
            self._load(ep.name, dist_name, dist_version, ep.load)

    # -- loading ---------------------------------------------------------------------
    def add(self, provider, name=None, distribution="test", version=""):
        """Load ``provider`` as if it were an installed plugin (for tests).

        Parameters
        ----------
        provider : module, object, `EstimatorSpec`, `MassEstimator` subclass, or list
            A plugin module or object with the ``astro_clustermass_estimators`` hook, or
            the specs/classes such a hook would return.
        name : str, optional
            Its entry-point name (default: the module's or the first estimator's name).
        distribution, version : str
            What the listing shows as its package and version.

        Returns
        -------
        `PluginRecord`
        """
        if isinstance(provider, (EstimatorSpec, type)):
            provider = [provider]
        if isinstance(provider, (list, tuple)):
            items = list(provider)
            name = name or str(getattr(items[0], "name", "test") if items else "test")
            self._load(name, distribution, version, lambda: lambda: items)
        else:
            name = name or getattr(provider, "__name__", type(provider).__name__)
            self._load(name, distribution, version, lambda: provider)
        return self.plugins[-1]

    def _load(self, name, dist, version, loader):
        record = PluginRecord(name, dist, version, "ok")
        self.plugins.append(record)
        if name in self.disabled or dist in self.disabled:
            record.status = "blocked"
            log.info(f"plugin {name!r} ({dist}) is disabled by configuration")
            return
        # Third-party code (the import, the hook) runs contained: sys.exit, a hang or
        # any other escape is this plugin's failure, not the session's.
        timeout = plugin_import_timeout()
        try:
            plugin = contained_call(loader, f"importing plugin {name!r} ({dist})", timeout)
            hook_fn = getattr(plugin, "astro_clustermass_estimators", None)
            if hook_fn is not None:
                # Modules and objects: register with pluggy, which validates the hook.
                self._pm.register(plugin, name=f"{dist}:{name}")
                impls = [i for i in self._pm.hook.astro_clustermass_estimators.get_hookimpls()
                         if i.plugin is plugin]
                if not impls:
                    raise PluginError("astro_clustermass_estimators is not marked @hookimpl")
                returned = contained_call(impls[0].function,
                                          f"the hook of plugin {name!r} ({dist})", timeout)
            elif callable(plugin) and not isinstance(plugin, type):
                returned = contained_call(plugin, f"plugin {name!r} ({dist})", timeout)
            else:
                raise PluginError(
                    "entry point must name a module or object with an "
                    "astro_clustermass_estimators hook, or a callable returning specs"
                )
            if returned is None:
                returned = []
            if not isinstance(returned, (list, tuple)):
                raise PluginError(f"hook returned {type(returned).__name__}, expected a list")
            specs = [_spec_from(obj, dist, version) for obj in returned]
        except Exception as exc:  # one broken plugin must not break the others
            record.status = "error"
            record.error = f"{type(exc).__name__}: {exc}"
            message = f"plugin {name!r} from {dist} failed to load: {record.error}"
            if self.strict:
                raise PluginError(message) from exc
            warnings.warn(message, PluginWarning, stacklevel=2)
            return
        for spec in specs:
            builtin = [s for s in self._specs.get(spec.name, ()) if s.package == _BUILTIN]
            if builtin and dist != _BUILTIN:
                # A plugin never takes a built-in estimator's name: the built-in one keeps
                # it, the plugin's is refused (listed, with a warning).
                message = (f"plugin {name!r} from {dist} registers an estimator named "
                           f"{spec.name!r}, the name of a built-in estimator: refused (the "
                           "built-in one keeps the name); the plugin must rename it")
                if self.strict:
                    raise DuplicateEstimatorError(message)
                self.refused.append((spec, "refused: the name of a built-in estimator"))
                warnings.warn(message, PluginWarning, stacklevel=2)
                continue
            record.estimators.append(spec.name)
            self._specs.setdefault(spec.name, []).append(spec)
            if len(self._specs[spec.name]) > 1:
                providers = [s.package for s in self._specs[spec.name]]
                message = (f"estimator name {spec.name!r} is registered by several "
                           f"packages: {providers}")
                if self.strict:
                    raise DuplicateEstimatorError(message)
                warnings.warn(f"{message}; it is unusable until all but one of them are "
                              "disabled (ASTRO_CLUSTERMASS_DISABLE_PLUGINS)", PluginWarning,
                              stacklevel=2)

    # -- queries ---------------------------------------------------------------------
    @property
    def names(self):
        """Names of all registered estimators (including duplicated ones)."""
        return sorted(self._specs)

    def spec(self, name) -> EstimatorSpec:
        """The spec of estimator ``name``."""
        specs = self._specs.get(name)
        if not specs:
            broken = [p for p in self.plugins if p.status != "ok"]
            hint = "".join(f"; plugin {p.name!r} ({p.distribution}) is {p.status}"
                           + (f": {p.error}" if p.error else "") for p in broken)
            raise UnknownEstimatorError(
                f"no estimator named {name!r}; available: {', '.join(self.names) or 'none'}"
                + hint)
        if len(specs) > 1:
            raise DuplicateEstimatorError(
                f"estimator name {name!r} is registered by several packages: "
                f"{[s.package for s in specs]}; disable one with "
                "ASTRO_CLUSTERMASS_DISABLE_PLUGINS")
        return specs[0]

    def takes(self, name, option):
        """Whether estimator ``name`` can be built and its factory takes ``option``.

        False (with a warning) for a name registered twice or whose factory module does
        not import: one broken plugin does not stop a question asked of all of them.
        """
        try:
            return self.spec(name).accepts(option)
        except Exception as exc:  # noqa: BLE001 - reported, the others go on
            warnings.warn(f"skipping estimator {name!r}: {type(exc).__name__}: {exc}",
                          PluginWarning, stacklevel=2)
            return False

    def get(self, name, **options) -> MassEstimator:
        """Build the estimator ``name`` with keyword ``options``."""
        estimator = self.spec(name).load(**options)
        if estimator.name != name:
            raise EstimatorError(
                f"estimator registered as {name!r} calls itself {estimator.name!r}")
        return estimator

    def table(self) -> QTable:
        """One row per estimator (and per plugin that failed or is blocked)."""
        rows = []
        for name, specs in sorted(self._specs.items()):
            for spec in specs:
                status = ("duplicate name" if len(specs) > 1
                          else "unavailable" if spec.unavailable else "ok")
                rows.append((name, spec.package, spec.version, ", ".join(spec.inputs),
                             status, spec.description))
        for spec, why in self.refused:
            rows.append((spec.name, spec.package, spec.version, ", ".join(spec.inputs), why,
                         spec.description))
        for record in self.plugins:
            if record.status != "ok":
                rows.append(("", record.distribution, record.version, "",
                             f"{record.status}: {record.name}"
                             + (f": {record.error}" if record.error else ""), ""))
        names = ("name", "package", "version", "inputs", "status", "description")
        if not rows:
            return QTable(names=names, dtype=[str] * len(names))
        return QTable(rows=rows, names=names)


_default = None


def default_registry(refresh=False) -> Registry:
    """The process-wide registry, discovered on first use (``refresh`` to rediscover)."""
    global _default
    if _default is None or refresh:
        _default = Registry()
    return _default
