"""One way to write a file: completely, or not at all.

`atomic_write` calls a writer on a temporary file in the output's directory and renames
it over the output only when the writer has finished; an error, an interrupt or a
signal leaves the output as it was. Every file the package writes (catalogues, tile
results, EBI stacks, weights, reports, simulated event files) goes through it.
"""

from __future__ import annotations

import os
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_write", "atomic_path", "atomic_write_text"]

#: Temporary files are named ``.<name>.<random>.acm-part<suffix>``: hidden, recognisable.
_TMP_MARK = ".acm-part"


def _target(path):
    """The file to replace: ``path``, or where a symlink at ``path`` points.

    A symlink is written through (its target is replaced, the link kept); anything
    at ``path`` that is not a regular file (a FIFO, a device, a directory) is refused.
    """
    path = Path(path)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return path
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise OSError(f"{str(path)!r} is {kind}; refusing to replace it")
    return path


def _umask_mode():
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_path(path, *, overwrite=True, suffix=None, makedirs=False):
    """Context manager: a temporary path to write, renamed onto ``path`` at the end.

    Parameters
    ----------
    path : path-like
        The output file.
    overwrite : bool
        Replace an existing ``path`` (else `FileExistsError` before anything is written).
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
    target = _target(path)
    if not overwrite and (target.exists() or Path(path).is_symlink()):
        raise FileExistsError(f"{os.fspath(path)!r} exists; pass overwrite=True to replace it")
    directory = target.parent
    if makedirs:
        directory.mkdir(parents=True, exist_ok=True)
    elif not directory.is_dir():
        raise FileNotFoundError(f"cannot write {os.fspath(path)!r}: directory "
                                f"{str(directory)!r} does not exist")
    if suffix is None:
        suffix = "".join(target.suffixes)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=_TMP_MARK + suffix,
                               dir=directory)
    os.close(fd)
    try:
        os.chmod(tmp, _umask_mode())  # mkstemp makes 0600 files
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        try:
            os.remove(tmp)
        except FileNotFoundError:
            pass
        raise


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
