"""The opening every notebook shares: a Colab badge under the title, and an install cell.

The notebooks in ``notebooks/`` are their own source: edit them in Jupyter (or as JSON), and keep them
stripped of outputs (``tests/test_notebooks.py`` checks both that and this opening). Only their opening is
made here, from one setting, ``repository`` in ``_config.yml``:

    python scripts/notebook_opening.py           # report notebooks whose opening is out of date
    python scripts/notebook_opening.py --write   # rewrite the badge and install cell of every notebook
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
BADGE = "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"

INSTALL = '''# Colab (or a Jupyter without MixQ): install MixQ and its shipped data, then run from any folder. The
# repository is cloned once, into a temporary folder: MixQ is pip-installed from it with the `colab` extra (what
# the notebooks need; not the book's build tools, whose pins would move Colab's packages), and its mini models
# (assets/) and published records (results/ptq/) are copied into MixQ's data folder (~/.local/share/mixq, or
# $MIXQ_HOME), each file checked against the sha256 the package lists. A no-op where MixQ is installed already.
import importlib
import importlib.util
import subprocess
import sys
import tempfile

REPOSITORY, BRANCH = "{url}", "{branch}"
if importlib.util.find_spec("mixq_core") is None:
    with tempfile.TemporaryDirectory() as clone:
        subprocess.run(["git", "clone", "--quiet", "--depth", "1", "--branch", BRANCH, REPOSITORY, clone], check=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"{{clone}}[colab]"], check=True)
        subprocess.run([sys.executable, "-m", "mixq_core.shipped_cli", "fetch", "--from", clone], check=True)
    importlib.invalidate_caches()  # this kernel started before the install'''


def repository(root: Path = ROOT) -> tuple[str, str]:
    """``(url, branch)`` from ``_config.yml``'s ``repository`` setting (url without a trailing ``.git``)."""
    setting = yaml.safe_load((root / "_config.yml").read_text())["repository"]
    return setting["url"].rstrip("/").removesuffix(".git"), setting.get("branch", "main")


def colab_badge(stem: str, root: Path = ROOT) -> str:
    """The badge that opens ``notebooks/<stem>.ipynb`` of the repository in Colab."""
    url, branch = repository(root)
    owner_name = url.removeprefix("https://github.com/")
    return f"{BADGE}(https://colab.research.google.com/github/{owner_name}/blob/{branch}/notebooks/{stem}.ipynb)"


def install_source(root: Path = ROOT) -> str:
    url, branch = repository(root)
    return INSTALL.format(url=url, branch=branch)


def with_opening(notebook: nbformat.NotebookNode, stem: str, root: Path = ROOT) -> nbformat.NotebookNode:
    """``notebook`` with the badge as the second paragraph of its first (title) cell and the install cell second,
    tagged ``remove-cell`` so that the book does not show it."""
    title, _, rest = notebook.cells[0].source.partition("\n\n")
    if rest.startswith(BADGE):
        rest = rest.partition("\n\n")[2]
    notebook.cells[0].source = f"{title}\n\n{colab_badge(stem, root)}\n\n{rest}".rstrip()
    install = nbformat.v4.new_code_cell(install_source(root), metadata={"tags": ["remove-cell"]})
    if len(notebook.cells) > 1 and "remove-cell" in notebook.cells[1].metadata.get("tags", []):
        install.id = notebook.cells[1].id
        notebook.cells[1] = install
    else:
        notebook.cells.insert(1, install)
    return notebook


def opening_problems(path: Path, root: Path = ROOT) -> list[str]:
    """What differs between the opening of the notebook at ``path`` and the one :func:`with_opening` writes."""
    notebook = nbformat.read(path, as_version=4)
    expected = with_opening(nbformat.read(path, as_version=4), path.stem, root)
    problems = []
    if notebook.cells[0].source != expected.cells[0].source:
        problems.append(f"{path.name}: the Colab badge is not {colab_badge(path.stem, root)}")
    if notebook.cells[1].source != expected.cells[1].source or notebook.cells[1].metadata != expected.cells[1].metadata:
        problems.append(f"{path.name}: the install cell (second cell, tagged remove-cell) differs from the shared one")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite the opening of every notebook that differs")
    args = parser.parse_args()
    stale = [path for path in sorted(NOTEBOOK_DIR.glob("*.ipynb")) if opening_problems(path)]
    for path in stale:
        if args.write:
            notebook = with_opening(nbformat.read(path, as_version=4), path.stem)
            path.write_text(nbformat.writes(notebook) + "\n")
        print(f"{'rewrote' if args.write else 'out of date'}: {path.relative_to(ROOT)}")
    return 1 if stale and not args.write else 0


if __name__ == "__main__":
    sys.exit(main())
