"""The main job: execute the notebooks with papermill, then build the book with jupyter-book.

Executed notebooks go to ``executed/`` (the book's table of contents points there), so the
committed notebooks stay clean. A notebook that fails is reported by name with its error;
the others still run, the book is still built, and the command exits non-zero.

With ``executor="local"`` (the default) the notebooks run here, one after another, and make
the records they show. With ``executor="ray"`` the profile's whole plan (synthetic sets,
every grid point, then the notebooks) runs as tasks on a Ray cluster first (see
:mod:`mixq_core.executor`); the book is built here.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from .errors import MixQError, unknown_name
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


def list_notebooks(selection: list[str] | None = None, notebook_dir: Path = NOTEBOOK_DIR) -> list[Path]:
    """The notebooks to run, in name order; ``selection`` holds names or stems to keep."""
    available = sorted(notebook_dir.glob("*.ipynb"))
    if not selection:
        return available
    by_key = {key: p for p in available for key in (p.name, p.stem)}
    missing = [s for s in selection if s not in by_key]
    if missing:
        raise unknown_name("notebook", missing[0], [p.stem for p in available])
    return [by_key[s] for s in selection]


def execute_notebook(path: Path, parameters: dict, out_dir: Path = EXECUTED_DIR) -> str | None:
    """Run one notebook with papermill into ``out_dir``; return None on success, else the error text."""
    import papermill

    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(str(path), str(out_dir / path.name), parameters=parameters,
                                   kernel_name="python3", cwd=str(Path.cwd()), progress_bar=False)
    except Exception as exc:  # papermill wraps the notebook's own exception; report it, go on
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
    return None


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
    from .executor import EXECUTORS, run_plan

    load_profile(profile)  # fail fast on an unknown profile, before any notebook runs
    if executor not in EXECUTORS:
        raise unknown_name("executor", executor, EXECUTORS)
    check_checkout(book=not skip_book)
    failures: dict[str, str] = {}
    seconds: dict[str, float] = {}
    paths = list_notebooks(notebooks)
    executed = None
    if executor == "ray":
        executed = run_plan(profile, "ray", notebooks=paths, **ray_options)
        failures.update({f"{f.stage} {f.name}": f.error for f in executed.failures})
        paths = []  # run as tasks already
    for path in progress(paths, desc="notebooks"):
        start = time.time()
        error = execute_notebook(path, {"profile": profile})
        seconds[path.stem] = round(time.time() - start, 1)
        status = "ok" if error is None else f"FAILED: {error}"
        print(f"[reproduce] {path.name}: {status} ({seconds[path.stem]} s)", file=sys.stderr)
        if error is not None:
            failures[path.stem] = error
    book = None
    if not skip_book:
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
