"""The ``astro-clustermass`` command: every subcommand of the package lives here.

One module per subcommand, imported only when used, each with
``add_arguments(parser)`` and ``run(args) -> int``; none imports torch or dask at
import time. `main` builds the parser, dispatches, and turns errors into one line on
stderr and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .._version import __version__
from ..utils.logger import log

__all__ = ["main", "one_line"]


#: name -> one-line help; the module is ``astro_clustermass.cli.<name with _ for ->``.
SUBCOMMANDS = {
    "estimate": "add mass columns to a catalogue file",
    "plugins": "list estimators and plugins",
    "demo": "run every installed estimator on a built-in mock eFEDS sky",
    "ebi": "build energy-band images of catalogue clusters from event files (HDF5)",
    "photometry": "measure aperture count rates and L_X from images or event files",
    "run": "catalogue-scale estimation by sky tile on Dask (resumable)",
    "simulate": "simulate a mock eFEDS-like sky: events, truth and detections",
    "dataset": "simulate a training sky (fields or stamps) and build a CNN data set",
    "train": "train a CNN ensemble on a simulated data set",
    "evaluate-ensemble": "a CNN ensemble on its test (or validation) split, beside the "
                         "scaling relations",
    "evaluate": "compare estimators against true masses: metrics table and report",
}


def _module(name):
    return f"{__name__}.{name.replace('-', '_')}"


def _build_parser():
    parser = argparse.ArgumentParser(
        prog="astro-clustermass",
        description="Galaxy-cluster masses (M500c) with uncertainties from X-ray survey data.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log INFO messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        try:
            importlib.import_module(_module(name)).add_arguments(p)
        except Exception as exc:  # a broken subcommand must not break the others
            p.set_defaults(_broken=f"{type(exc).__name__}: {exc}")
    return parser


def main(argv=None):
    """Entry point of ``astro-clustermass``; returns the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    # Messages reach the terminal through astropy's handler only (the package's logger
    # is a child of astropy's; its warnings are logged by astropy's warnings logging):
    # no handler of our own, so none is printed twice. -v: this package's INFO too.
    level = log.level
    log.setLevel(logging.INFO if args.verbose else logging.WARNING)
    try:
        return _run(parser, args)
    finally:
        log.setLevel(level)


def _run(parser, args):
    if args.command is None:
        parser.print_help()
        return 2
    if getattr(args, "_broken", None):
        print(f"astro-clustermass {args.command}: unavailable: {args._broken}", file=sys.stderr)
        return 1
    try:
        return importlib.import_module(_module(args.command)).run(args)
    except KeyboardInterrupt:
        # Ctrl-C (or SIGINT): files being written were removed on the way out.
        print(f"astro-clustermass {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - no traceback reaches a user
        from ..utils.optional import from_import_error

        # an optional package imported without `require`: still name its extra
        exc = from_import_error(exc, f"astro-clustermass {args.command}") or exc
        print(f"astro-clustermass {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 1


#: Exceptions whose message says enough without the exception's type.
_SELF_EXPLAINING = (OSError, KeyError, ValueError, RuntimeError, ArithmeticError)

#: Longest error line printed [characters].
MAX_ERROR_LENGTH = 500


def one_line(exc):
    """The text of ``exc`` as one line: its first line (e.g. not astropy's table of
    formats), its type when the message alone would not say what went wrong, and at
    most `MAX_ERROR_LENGTH` characters."""
    text = str(exc).strip()
    if isinstance(exc, KeyError) and text.startswith(("'", '"')) and len(exc.args) == 1:
        text = str(exc.args[0])  # KeyError quotes its message
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    text = lines[0] if lines else ""
    if len(lines) > 1 and not text.endswith((".", ":")):
        text += " ..."
    if not text or not isinstance(exc, _SELF_EXPLAINING):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    if len(text) > MAX_ERROR_LENGTH:
        text = text[:MAX_ERROR_LENGTH - 3] + "..."
    return text


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
