"""One way to write a file: completely, or not at all.

`atomic_write` calls a writer on a temporary file in the output's directory and renames
it over the output only when the writer has finished; an error, an interrupt or a
signal leaves the output as it was. Every file the package writes (catalogues, tile
results, EBI stacks, weights, reports, simulated event files) goes through it.

What it promises:

- the output is the complete new file or the old one, never a mixture;
- a symbolic link at the output is written through (its target is replaced, the link
  kept); a FIFO, a device, a socket or a directory at the output is refused, never
  replaced, with or without ``overwrite``;
- without ``overwrite`` an existing output is never replaced, even by a writer that
  started at the same moment (the file is linked into place, which fails if another
  writer got there first);
- temporary files are named ``.<name>.<host>-<pid>-<random>.acm-part<suffix>``: the
  process that writes them removes them on an error, on Ctrl-C and on SIGTERM (in the
  main thread; `cleanup_on_signals`), and a later writer of the same output removes the
  leftovers of a writer on this host that no longer runs (killed with SIGKILL, or
  with the machine).
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import stat
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_write", "atomic_path", "atomic_write_text", "check_target",
           "cleanup_on_signals", "pid_alive"]

#: Temporary files are named ``.<name>.<host>-<pid>-<random>.acm-part<suffix>``.
_TMP_MARK = ".acm-part"

#: Leftovers in the old naming (no writer id) older than this [s] are removed.
_LEGACY_AGE = 86400.0


def _host():
    """A short name of this machine for temporary files (no dots or dashes)."""
    name = socket.gethostname().split(".")[0] or "host"
    return "".join(c for c in name if c.isalnum())[:16] or "host"


def pid_alive(pid):
    """Whether process ``pid`` exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def _link_error(path):
    """The errno of following the symbolic link ``path`` (None when it resolves)."""
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno
    return None


def _describe(path):
    """'does not exist' / 'is a symbolic link loop' ... for a missing path."""
    path = Path(path)
    if path.is_symlink():
        error = _link_error(path)
        if error == errno.ELOOP:
            return "is a symbolic link loop"
        if error is not None:
            return f"is a symbolic link to {os.readlink(path)!r}, which does not exist"
    return "does not exist"


def check_target(path, overwrite=True, makedirs=False):
    """The file that writing ``path`` replaces, after checking it can be written.

    A symbolic link is followed (its target is replaced, the link kept). Raises an
    `OSError` naming ``path`` when it is a directory, FIFO, device or socket, a link
    loop, or (without ``makedirs``) in a directory that does not exist;
    `FileExistsError` when it exists and ``overwrite`` is False; `PermissionError`
    when its directory is not writable. Nothing is written.
    """
    shown = os.fspath(path)
    path = Path(path)
    if path.is_symlink():
        if _link_error(path) == errno.ELOOP:
            raise OSError(errno.ELOOP, f"cannot write {shown!r}: it is a symbolic link loop")
        path = Path(os.path.realpath(path))
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else (
            "a FIFO" if stat.S_ISFIFO(st.st_mode) else
            "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else
            "not a regular file")
        raise OSError(f"{shown!r} is {kind}; refusing to replace it")
    if st is not None and not overwrite:
        raise FileExistsError(f"{shown!r} exists; pass overwrite=True to replace it")
    directory = path.parent
    if not directory.is_dir():
        if makedirs:
            directory.mkdir(parents=True, exist_ok=True)
        else:
            raise FileNotFoundError(f"cannot write {shown!r}: directory {str(directory)!r} "
                                    f"{_describe(directory)}")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write {shown!r}: directory {str(directory)!r} is "
                              "not writable")
    return path


def _umask_mode():
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _remove_stale(target):
    """Remove the temporary files of ``target`` left by dead writers on this host."""
    prefix = f".{target.name}."
    host = _host()
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and _TMP_MARK in name):
            continue
        writer = name[len(prefix):].split(".", 1)[0].split("-")
        try:
            if len(writer) == 3:  # host-pid-random
                if writer[0] != host or pid_alive(int(writer[1])):
                    continue
            elif time.time() - entry.stat(follow_symlinks=False).st_mtime < _LEGACY_AGE:
                continue
            if not entry.is_file(follow_symlinks=False):
                continue
            os.remove(entry.path)
        except (OSError, ValueError):
            continue


# -- signals -------------------------------------------------------------------------------
_LIVE = set()           # temporary files being written by this process
_LIVE_LOCK = threading.Lock()
_HANDLED = (signal.SIGTERM, signal.SIGINT) + ((signal.SIGHUP,) if hasattr(signal, "SIGHUP")
                                              else ())
_previous = {}          # signal -> handler before ours
_depth = 0              # nesting of cleanup_on_signals in the main thread


def _remove_live():
    with _LIVE_LOCK:
        paths = list(_LIVE)
    for tmp in paths:
        try:
            os.remove(tmp)
        except OSError:
            pass


def _on_signal(signum, frame):
    _remove_live()
    previous = _previous.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)  # e.g. Python's SIGINT handler: KeyboardInterrupt
    elif previous != signal.SIG_IGN:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)  # die of the signal, as without us


@contextmanager
def cleanup_on_signals():
    """While inside, SIGTERM, SIGINT and SIGHUP first remove this process's temporary
    files (those of every thread), then act as before (exit, `KeyboardInterrupt`, or
    the handler that was installed). Only the main thread can install signal handlers;
    elsewhere this does nothing."""
    global _depth
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _depth == 0:
        for sig in _HANDLED:
            try:
                _previous[sig] = signal.signal(sig, _on_signal)
            except (ValueError, OSError):  # pragma: no cover - embedded interpreters
                pass
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            for sig, handler in list(_previous.items()):
                try:
                    signal.signal(sig, handler)
                except (ValueError, OSError):  # pragma: no cover
                    pass
            _previous.clear()


# -- writing -------------------------------------------------------------------------------
def _place(tmp, target, overwrite):
    """Move ``tmp`` onto ``target``; without ``overwrite`` never onto an existing file."""
    if overwrite:
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target)  # fails if target exists: no race between two writers
    except FileExistsError:
        raise FileExistsError(f"{os.fspath(target)!r} appeared while it was being written; "
                              "pass overwrite=True to replace it") from None
    except OSError:  # file systems without hard links
        if os.path.lexists(target):
            raise FileExistsError(f"{os.fspath(target)!r} exists; pass overwrite=True to "
                                  "replace it") from None
        os.replace(tmp, target)
        return
    os.remove(tmp)


@contextmanager
def atomic_path(path, *, overwrite=True, suffix=None, makedirs=False):
    """Context manager: a temporary path to write, renamed onto ``path`` at the end.

    Parameters
    ----------
    path : path-like
        The output file.
    overwrite : bool
        Replace an existing ``path`` (else `FileExistsError` before anything is written,
        and also if another writer creates ``path`` in the meantime).
    suffix : str, optional
        Suffix of the temporary file (default: ``path``'s suffixes, so that writers that
        read the format from the name see the right one).
    makedirs : bool
        Create ``path``'s directory if it is missing (else `FileNotFoundError` naming it).

    Yields
    ------
    str
        The temporary file (created empty, with the permissions the user's umask gives).
    """
    target = check_target(path, overwrite=overwrite, makedirs=makedirs)
    _remove_stale(target)
    if suffix is None:
        suffix = "".join(target.suffixes)
    with cleanup_on_signals():
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{_host()}-{os.getpid()}-",
                                   suffix=_TMP_MARK + suffix, dir=target.parent)
        os.close(fd)
        with _LIVE_LOCK:
            _LIVE.add(tmp)
        try:
            os.chmod(tmp, _umask_mode())  # mkstemp makes 0600 files
            yield tmp
            _place(tmp, target, overwrite)
        except BaseException:
            try:
                os.remove(tmp)
            except FileNotFoundError:
                pass
            raise
        finally:
            with _LIVE_LOCK:
                _LIVE.discard(tmp)


def atomic_write(path, writer, **kwargs):
    """Call ``writer(tmp)`` on a temporary file, then rename it onto ``path``.

    Keyword arguments are those of `atomic_path`. Returns ``path`` as a `~pathlib.Path`.
    """
    with atomic_path(path, **kwargs) as tmp:
        writer(tmp)
    return Path(path)


def atomic_write_text(path, text, **kwargs):
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    def writer(tmp):
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
    return atomic_write(path, writer, **kwargs)
