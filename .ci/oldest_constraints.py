"""Write a pip constraints file that pins every dependency to the lower bound in pyproject.toml.

Used by ``tox -e oldestdeps``: the package is then installed with ``pip install -c FILE``, so
that pip resolves the oldest versions that ``pyproject.toml`` claims to support, together with
whatever transitive dependencies fit them. Only the lower bound (``>=``, ``==``, ``~=``) is
pinned; a requirement without one is left free, and so is every name given with ``--exclude``
(torch: its oldest release on the package index is a multi-GB CUDA build, so the oldest-deps
run keeps the CPU build of the machine). Reads only pyproject.toml; asks no package index.

Usage::

    python .ci/oldest_constraints.py --extras cnn test --exclude torch -o oldest.txt
"""

import argparse
import sys
from pathlib import Path

from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

LOWER = (">=", "==", "~=")


def lower_bounds(pyproject, extras=(), exclude=()):
    """Return ``name==version`` pins for the lower bounds of the requirements.

    Parameters
    ----------
    pyproject : path-like
        The project's ``pyproject.toml``.
    extras : iterable of str
        Optional-dependency groups to include besides ``[project] dependencies``. A group
        that names the project itself (``astro_clustermass[cnn]``) is expanded.
    exclude : iterable of str
        Distribution names to leave unpinned.

    Returns
    -------
    pins : list of str
        Sorted, one per distribution; extras are dropped (pip refuses them in constraints).
    """
    project = tomllib.loads(Path(pyproject).read_text())["project"]
    name = project["name"].replace("_", "-").lower()
    optional = project.get("optional-dependencies", {})
    exclude = {e.replace("_", "-").lower() for e in exclude}
    todo = list(project.get("dependencies", []))
    for extra in extras:
        todo += optional[extra]
    pins, seen = {}, set()
    while todo:
        req = Requirement(todo.pop())
        key = req.name.replace("_", "-").lower()
        if key == name:  # a self-reference such as all = ["astro_clustermass[cnn,test]"]
            for extra in set(req.extras) - seen:
                seen.add(extra)
                todo += optional[extra]
            continue
        if key in exclude:
            continue
        for spec in req.specifier:
            if spec.operator in LOWER:
                version = spec.version
                if key in pins and pins[key] != version:
                    raise ValueError(f"{key}: two lower bounds, {pins[key]} and {version}")
                pins[key] = version
    return [f"{key}=={version}" for key, version in sorted(pins.items())]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pyproject", default=Path(__file__).parents[1] / "pyproject.toml")
    parser.add_argument("--extras", nargs="*", default=[], help="optional-dependency groups")
    parser.add_argument("--exclude", nargs="*", default=[], help="names to leave unpinned")
    parser.add_argument("-o", "--output", default="-", help="file to write (default: stdout)")
    args = parser.parse_args(argv)
    text = "".join(f"{pin}\n" for pin in lower_bounds(args.pyproject, args.extras, args.exclude))
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text)


if __name__ == "__main__":
    main()
