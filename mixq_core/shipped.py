"""Where MixQ's shipped data are, and how an installed MixQ gets them.

The shipped data are the trained mini models and generators (``assets/``, with ``assets/manifest.json``) and the
published result records that the book's tables read (``results/ptq/<profile>/`` of :data:`PUBLISHED_PROFILES`).
In a checkout of the repository (the source tree, or ``pip install -e``) they are the checkout's own folders. A
non-editable install (Colab's install cell, ``pip install ./clone``) holds code only: the data, 80 MB of mostly
incompressible fp16 weights, are fetched once from a clone of the repository into a per-user folder, and every file
is checked against the sha256 that this version of the package lists in ``mixq_core/shipped.sha256`` (the format of
``sha256sum``), so the data always match the code they were published with:

    python -m mixq_core.shipped_cli fetch --from CLONE    # copy and check; CLONE may also be a git URL (--branch)
    python -m mixq_core.shipped_cli verify                # check what the folder holds
    python -m mixq_core.shipped_cli manifest [--write]    # in a checkout: the list, made from the files git tracks

That folder is ``$MIXQ_HOME``, by default ``$XDG_DATA_HOME/mixq`` (``~/.local/share/mixq``); records the installed
package makes go to its ``results/`` too. ``MIXQ_ASSETS`` and ``MIXQ_RESULTS`` still override the two folders.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .errors import DatasetNotFoundError

PUBLISHED_PROFILES = ("mini-full", "mini-gap", "mini-polysemy", "mini-gap-polysemy", "mini-short", "mini-long")
PUBLISHED_KINDS = tuple(f"ptq/{profile}" for profile in PUBLISHED_PROFILES)
MANIFEST = Path(__file__).with_name("shipped.sha256")
_SOURCE_ROOT = Path(__file__).resolve().parent.parent


class ShippedDataMissing(DatasetNotFoundError):
    """The shipped data (or some of them) are not where this MixQ looks for them."""


def checkout() -> Path | None:
    """The repository checkout this package runs from (source tree or editable install), or None when installed."""
    root = _SOURCE_ROOT
    return root if (root / "pyproject.toml").is_file() and (root / "assets" / "manifest.json").is_file() else None


def data_home() -> Path:
    """The folder an installed MixQ keeps its shipped data (and its own records) in."""
    if os.environ.get("MIXQ_HOME"):
        return Path(os.environ["MIXQ_HOME"]).expanduser()
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share").expanduser() / "mixq"


def default_assets_dir() -> Path:
    """``assets/`` of the checkout, or of :func:`data_home` for an installed MixQ."""
    return (checkout() or data_home()) / "assets"


def default_results_dir() -> Path:
    """``results`` relative to the working directory in a checkout (as ``mixq`` always wrote them), else
    :func:`data_home`'s ``results/``, which holds the fetched published records."""
    return Path("results") if checkout() else data_home() / "results"


def how_to_fetch() -> str:
    """The one sentence that says where an installed MixQ looks for its shipped data and how to get them there."""
    return (f"an installed MixQ keeps the shipped models and published records in {data_home()} ($MIXQ_HOME); fetch "
            "them from a clone of the repository with `python -m mixq_core.shipped_cli fetch --from CLONE` (each file "
            "is checked against its sha256), or run MixQ from the clone itself")


def missing_error(what: str) -> ShippedDataMissing:
    """The error for a shipped file or folder that is absent: what is missing, and how to get it."""
    if checkout():
        return ShippedDataMissing(f"{what} is missing from the checkout {checkout()}; restore it with "
                                  "`git checkout -- assets results`")
    return ShippedDataMissing(f"{what} is missing: {how_to_fetch()}")


def shipped_file(name: str) -> Path:
    """The path of the shipped file ``name`` (relative to the repository root, e.g. ``book/figures/x.png``): in the
    checkout, or in :func:`data_home` for an installed MixQ. Raises :func:`missing_error` when it is absent."""
    path = (checkout() or data_home()) / name
    if not path.is_file():
        raise missing_error(name)
    return path


def check_published(results_dir: str | os.PathLike, kind: str) -> None:
    """Raise :func:`missing_error` when an installed MixQ reads a published profile's records from its data home
    and they were never fetched (elsewhere an absent folder only means nothing has run yet)."""
    if kind not in PUBLISHED_KINDS or checkout() or (Path(results_dir) / kind).is_dir():
        return
    if Path(results_dir).resolve() == (data_home() / "results").resolve():
        raise missing_error(f"the published records {Path(results_dir) / kind}")


def read_manifest(path: str | os.PathLike | None = None) -> dict[str, str]:
    """``{path relative to the repository root: sha256}`` of every shipped file (``path``: another manifest)."""
    entries = {}
    for line in Path(MANIFEST if path is None else path).read_text().splitlines():
        digest, _, name = line.partition("  ")
        entries[name] = digest
    return entries


def manifest_text(root: str | os.PathLike) -> str:
    """The manifest of the checkout at ``root``: every file git tracks under ``assets/``, ``book/figures/`` (figures
    the notebooks show) and the published records' folders, with its sha256, one ``sha256  path`` line each
    (sorted)."""
    from .models import sha256_of

    folders = ["assets", "book/figures", *(f"results/{kind}" for kind in PUBLISHED_KINDS)]
    tracked = subprocess.run(["git", "ls-files", "-z", "--", *folders], cwd=root, capture_output=True, check=True,
                             text=True).stdout.split("\0")
    return "".join(f"{sha256_of(Path(root) / name)}  {name}\n" for name in sorted(filter(None, tracked)))


def problems(folder: str | os.PathLike, manifest: dict[str, str] | None = None) -> list[str]:
    """What differs between ``folder`` (a checkout or a data home) and the manifest: missing files, other hashes."""
    from .models import sha256_of

    manifest = read_manifest() if manifest is None else manifest
    found = []
    for name, digest in manifest.items():
        path = Path(folder) / name
        if not path.is_file():
            found.append(f"{name} is missing")
        elif sha256_of(path) != digest:
            found.append(f"{name} has sha256 {sha256_of(path)}, not the {digest} this MixQ was published with")
    return found


def _summary(found: list[str], limit: int = 5) -> str:
    more = f" (and {len(found) - limit} more)" if len(found) > limit else ""
    return "; ".join(found[:limit]) + more


def manifest_mismatch(folder, found: list[str], remedy: str) -> ShippedDataMissing:
    """The error for a folder whose files differ from the manifest (``found``: what differs), with its remedy."""
    return ShippedDataMissing(f"{folder} does not hold the data this MixQ was published with "
                              f"({MANIFEST.name}): {_summary(found)}; {remedy}")


def fetch(source: str | os.PathLike, home: str | os.PathLike | None = None, branch: str | None = None) -> Path:
    """Copy the shipped files from ``source`` (a clone of the repository, or a git URL to clone) into ``home``
    (default :func:`data_home`), after checking every one against the manifest; return ``home``.

    Nothing is copied unless all files are there with the listed sha256. Files already in ``home`` with the
    right hash are kept; records the installed package made there are left alone.
    """
    from .models import atomic_write, sha256_of

    home = data_home() if home is None else Path(home)
    if not Path(source).is_dir():
        with tempfile.TemporaryDirectory(prefix="mixq-clone-") as tmp:
            clone = ["git", "clone", "--quiet", "--depth", "1", *(["--branch", branch] if branch else []), str(source)]
            done = subprocess.run([*clone, tmp], capture_output=True, text=True)
            if done.returncode != 0:
                raise ShippedDataMissing(f"could not clone {source}: {done.stderr.strip()[-500:]}")
            return fetch(tmp, home)
    manifest = read_manifest()
    found = problems(source, manifest)
    if found:
        raise manifest_mismatch(source, found, "clone the repository at the commit this MixQ was installed from")
    for name, digest in manifest.items():
        target = home / name
        if not (target.is_file() and sha256_of(target) == digest):
            atomic_write(target, lambda tmp, name=name: shutil.copyfile(Path(source) / name, tmp))
    return home
