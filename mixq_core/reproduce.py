"""The main job: execute the notebooks with papermill, then build the book with jupyter-book.

Executed notebooks go to ``executed/`` (the book's table of contents points there), so the
committed notebooks stay clean. Each notebook is one page of the book, except those in
:data:`PAGE_VARIANTS`, which papermill runs once per page with that page's parameters. A notebook
that fails is reported by name with its error; the others still run, the book is still built, and the
command exits non-zero.

With ``executor="local"`` (the default) the notebooks run here, one after another, and make
the records they show. With ``executor="ray"`` the profile's whole plan (synthetic sets,
every grid point, then the notebooks) runs as tasks on a Ray cluster first (see
:mod:`mixq_core.executor`); the book is built here.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import MixQError, unknown_name
from .executor import EXECUTORS, run_plan
from .profiles import load_profile
from .progress import progress

NOTEBOOK_DIR = Path("notebooks")
EXECUTED_DIR = Path("executed")
BOOK_FILES = ("_toc.yml", "_config.yml")


class ReproduceError(MixQError):
    """One or more notebooks (or the book build) failed; the message names them."""


def check_checkout(book: bool = True) -> None:
    """Fail unless the working folder is the root of the repository checkout: the notebooks (and, to build
    the book, its configuration) are read from there, relative to it."""
    missing = [] if any(NOTEBOOK_DIR.glob("*.ipynb")) else [f"{NOTEBOOK_DIR}/*.ipynb"]
    missing += [name for name in (BOOK_FILES if book else ()) if not Path(name).is_file()]
    if missing:
        raise ReproduceError(f"run it in the root of the MixQ repository checkout (the folder holding "
                             f"{NOTEBOOK_DIR}/, {' and '.join(BOOK_FILES)}): {Path.cwd()} has no {', '.join(missing)}")


# A notebook the book shows as several pages: page -> (notebook stem, parameters, page title). The title
# replaces the notebook's own in the executed copy, so that each page names what it shows.
PAGE_VARIANTS = {
    "03_ptq_cnn": ("03_ptq", {"section": "grid_cnn"}, "Quantizing CNNs"),
    "04_ptq_vit": ("03_ptq", {"section": "grid_vit"}, "Quantizing a vision transformer"),
}


@dataclass(frozen=True)
class Page:
    """One page of the book: the notebook it is executed from, with which parameters and title."""

    name: str  # the executed notebook's stem, as _toc.yml names the page
    notebook: Path
    parameters: dict = field(default_factory=dict)
    title: str | None = None  # None: the notebook's own


def list_pages(selection: list[str] | None = None, notebook_dir: Path = NOTEBOOK_DIR) -> list[Page]:
    """The pages to execute, in name order; ``selection`` holds page or notebook names (with or without
    ``.ipynb``) to keep, a notebook name selecting each of its pages."""
    pages = []
    for path in sorted(notebook_dir.glob("*.ipynb")):
        variants = [Page(name, path, parameters, title)
                    for name, (stem, parameters, title) in PAGE_VARIANTS.items() if stem == path.stem]
        pages += variants or [Page(path.stem, path)]
    pages.sort(key=lambda page: page.name)
    if not selection:
        return pages
    keys = {key for page in pages for key in (page.name, page.notebook.stem)}
    missing = [s for s in selection if s.removesuffix(".ipynb") not in keys]
    if missing:
        raise unknown_name("notebook", missing[0], sorted(keys))
    wanted = {s.removesuffix(".ipynb") for s in selection}
    return [page for page in pages if page.name in wanted or page.notebook.stem in wanted]


def page_named(name: str, notebook_dir: Path = NOTEBOOK_DIR) -> Page:
    """The page called ``name`` (see :func:`list_pages`)."""
    return next(page for page in list_pages([name], notebook_dir) if page.name == name)


def execute_page(page: Page, parameters: dict, out_dir: Path = EXECUTED_DIR) -> str | None:
    """Run the notebook of ``page`` with papermill into ``out_dir/<page>.ipynb``, with the page's parameters
    over ``parameters``; return None on success, else the error text."""
    import papermill

    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{page.name}.ipynb"
    try:
        with _quiet_kernel():
            papermill.execute_notebook(str(page.notebook), str(out), parameters={**parameters, **page.parameters},
                                       kernel_name="python3", cwd=str(Path.cwd()), progress_bar=False)
    except Exception as exc:  # papermill wraps the notebook's own exception; report it, go on
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
    finally:
        if out.exists():
            _as_page(out, page.title)
    return None


@contextlib.contextmanager
def _quiet_kernel():
    """Start kernels with ``MIXQ_QUIET=1``: a progress bar saved in a page is a blank widget block there."""
    before = os.environ.get("MIXQ_QUIET")
    os.environ["MIXQ_QUIET"] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ["MIXQ_QUIET"]
        else:
            os.environ["MIXQ_QUIET"] = before


def _as_page(path: Path, title: str | None) -> None:
    """Make the executed notebook at ``path`` read as its page: the title ``title`` (its first heading; None
    keeps the notebook's) and no cell of the parameters papermill injected, which would repeat the notebook's own
    parameters cell with this run's values (the page's text says which profile it ran)."""
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
    first = next((cell for cell in notebook.cells if cell.cell_type == "markdown"), None)
    if title is not None and first is not None and first.source.startswith("# "):
        _, _, rest = first.source.partition("\n")
        first.source = f"# {title}\n{rest}"
    path.write_text(nbformat.writes(notebook) + "\n")


def page_profiles(out_dir: Path = EXECUTED_DIR) -> dict[str, str | None]:
    """The profile each executed page under ``out_dir`` was run with, as papermill injected it (None for a
    page without an injected ``profile``): the book is built from whatever pages are there, so a partial
    ``reproduce`` leaves pages of an earlier run beside the new ones."""
    import ast

    import nbformat

    profiles = {}
    for path in sorted(out_dir.glob("*.ipynb")):
        profiles[path.stem] = None
        for cell in nbformat.read(path, as_version=4).cells:
            if "injected-parameters" not in cell.metadata.get("tags", []):
                continue
            for statement in ast.parse(cell.source).body:
                if (isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Constant)
                        and any(getattr(target, "id", None) == "profile" for target in statement.targets)):
                    profiles[path.stem] = statement.value.value
    return profiles


def other_profile_pages(profile: str, out_dir: Path = EXECUTED_DIR) -> str | None:
    """None when every executed page ran ``profile``; else a sentence naming the pages that did not."""
    others = {name: ran for name, ran in page_profiles(out_dir).items() if ran != profile}
    if not others:
        return None
    listed = ", ".join(f"{name} ({ran or 'no profile injected'})" for name, ran in others.items())
    return (f"the book would mix profiles: these pages under {out_dir}/ were executed with another profile than "
            f"{profile!r}: {listed}. Run `mixq reproduce --profile {profile}` without --notebooks to execute them "
            f"all, or delete them")


def build_book(root: Path = Path("."), strict: bool = False) -> str | None:
    """``jupyter-book build`` of the repository root (``strict``: warnings are errors); None on
    success, else the tail of its log."""
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    command = [str(jupyter_book) if jupyter_book.exists() else "jupyter-book", "build", str(root)]
    if strict:
        command += ["--warningiserror", "--keep-going"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return (done.stdout + done.stderr)[-2000:]
    return None


def reproduce(profile: str = "mini", notebooks: list[str] | None = None, skip_book: bool = False,
              strict: bool = False, executor: str = "local", **ray_options) -> dict:
    """Execute the selected notebooks with ``profile`` as parameter, then build the book
    (``strict``: a warning of the book build fails it). ``executor="ray"`` runs the plan and
    the notebooks as Ray tasks (``ray_options``: see :func:`mixq_core.executor.run_on_ray`)."""
    load_profile(profile)  # fail fast on an unknown profile, before any notebook runs
    if executor not in EXECUTORS:
        raise unknown_name("executor", executor, EXECUTORS)
    check_checkout(book=not skip_book)
    failures: dict[str, str] = {}
    seconds: dict[str, float] = {}
    pages = list_pages(notebooks)
    executed = None
    if executor == "ray":
        executed = run_plan(profile, "ray", notebooks=pages, run_page=execute_page, **ray_options)
        failures.update({f"{f.stage} {f.name}": f.error for f in executed.failures})
        pages = []  # run as tasks already
    for page in progress(pages, desc="notebooks"):
        start = time.time()
        error = execute_page(page, {"profile": profile})
        seconds[page.name] = round(time.time() - start, 1)
        status = "ok" if error is None else f"FAILED: {error}"
        print(f"[reproduce] {page.name}: {status} ({seconds[page.name]} s)", file=sys.stderr)
        if error is not None:
            failures[page.name] = error
    book = None
    mixed = None if skip_book else other_profile_pages(profile)
    if mixed and strict:  # a book meant to be published shows one profile's numbers
        failures["book"] = mixed
    elif not skip_book:
        if mixed:
            print(f"[reproduce] warning: {mixed}.", file=sys.stderr)
        error = build_book(strict=strict)
        if error is not None:
            failures["book"] = error
        else:
            book = str(Path("_build/html/index.html").resolve())
            print(f"[reproduce] book: {book}", file=sys.stderr)
    if failures:
        raise ReproduceError("failed: " + "; ".join(f"{name}: {err}" for name, err in failures.items()))
    total = round(sum(seconds.values()), 1)
    result = {"profile": profile, "notebook_seconds": seconds, "notebooks_total_seconds": total, "book": book}
    if executed is not None:
        result["executor"] = executed.to_dict()
    return result
