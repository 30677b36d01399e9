"""The package's logger: a child of astropy's logger, for progress and information.

Problems the user should act on are *warnings* (`warnings.warn` with a class of
`astro_clustermass.utils.exceptions`), which can be filtered or turned into errors; the
logger carries what is only information (which estimators ran, which files were
written, what was assumed where nothing could go wrong). It is
``logging.getLogger("astropy.astro_clustermass")``, also ``astro_clustermass.log``, an
`~astropy.logger.AstropyLogger`: astropy's handler prints its records
(``INFO: ... [astro_clustermass.api]``), ``astropy.log.setLevel("WARNING")`` silences its
information as it does astropy's, and ``astropy.log.log_to_list()`` captures it::

    import astropy
    astropy.log.setLevel("WARNING")                   # astropy's and this package's INFO off
    import astro_clustermass
    astro_clustermass.log.setLevel("DEBUG")           # only this package's, more of it

Modules that still log through the standard library's ``logging.getLogger(
"astro_clustermass")`` reach the same logger: that logger forwards its records here.
"""

from __future__ import annotations

import logging

from astropy import log as _astropy_log
from astropy.logger import AstropyLogger
from astropy.utils import find_current_module

__all__ = ["log", "LOGGER_NAME"]

#: Name of the package's logger (a child of astropy's, ``"astropy"``).
LOGGER_NAME = f"{_astropy_log.name}.astro_clustermass"


class _PackageLogger(AstropyLogger):
    """An `~astropy.logger.AstropyLogger` that fills in ``%``-style arguments.

    astropy's handler prints ``record.msg`` as it is (it never applies ``record.args``),
    so ``log.info("%d rows", n)`` would print ``%d rows``: the message is formatted
    here, once, when the record is made.
    """

    def makeRecord(self, name, level, fn, lno, msg, args, exc_info, func=None, extra=None,
                   sinfo=None):
        if args:
            msg, args = msg % args, ()
        if extra is None or "origin" not in extra:
            # the module that logged (not this one, nor logging's)
            caller = find_current_module(1, finddiff=[True, "logging"])
            extra = {**(extra or {}), "origin": caller.__name__ if caller else "unknown"}
        return super().makeRecord(name, level, fn, lno, msg, args, exc_info, func=func,
                                  extra=extra, sinfo=sinfo)


def _package_logger():
    existing = logging.Logger.manager.loggerDict.get(LOGGER_NAME)
    if isinstance(existing, _PackageLogger):  # the module was imported again
        return existing
    previous = logging.getLoggerClass()
    logging.setLoggerClass(_PackageLogger)
    try:
        logger = logging.getLogger(LOGGER_NAME)
    finally:
        logging.setLoggerClass(previous)
    return logger


#: The package's logger (``astropy.astro_clustermass``).
log = _package_logger()


class _Forward(logging.Handler):
    """Hands the records of the plain ``astro_clustermass`` logger to `log`."""

    def emit(self, record):
        if not log.isEnabledFor(record.levelno):
            return
        if record.args:
            record.msg, record.args = record.getMessage(), ()
        if not hasattr(record, "origin"):
            record.origin = record.module if record.name == "astro_clustermass" \
                else record.name
        log.handle(record)


def _forward_plain_logger():
    plain = logging.getLogger("astro_clustermass")
    if not any(isinstance(h, _Forward) for h in plain.handlers):
        plain.addHandler(_Forward())
    plain.setLevel(logging.DEBUG)  # `log`'s level decides (in _Forward.emit)
    plain.propagate = False  # `log` passes the record on to astropy's and the root logger


_forward_plain_logger()
