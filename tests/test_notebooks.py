"""The notebooks are their own source: kept stripped of outputs, valid, and sharing one opening."""

import importlib.util
import json
from pathlib import Path

import nbformat
import pytest

from mixq_core.reproduce import PAGE_VARIANTS, list_pages

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
spec = importlib.util.spec_from_file_location("notebook_opening", REPO / "scripts" / "notebook_opening.py")
opening = importlib.util.module_from_spec(spec)
spec.loader.exec_module(opening)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stripped_and_valid(path):
    # nbformat.read gives a cell without an id one of its own, with only a warning: check the file itself
    raw = json.loads(path.read_text())
    missing = [index for index, cell in enumerate(raw["cells"]) if "id" not in cell]
    assert not missing, f"{path.name}: cells {missing} have no id (nbformat 4.5 requires one)"
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert set(notebook.metadata) <= {"kernelspec", "language_info"}, (
        f"{path.name}: notebook metadata {sorted(notebook.metadata)}; strip it (keep kernelspec, language_info)")
    for index, cell in enumerate(notebook.cells):
        where = f"{path.name}, cell {index}"
        assert set(cell.metadata) <= {"tags", "mystnb"}, (
            f"{where}: cell metadata {sorted(cell.metadata)}; keep only tags and mystnb (a figure's caption)")
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{where}: outputs are committed; clear them"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_has_the_shared_opening_and_a_parameters_cell(path):
    assert opening.opening_problems(path) == [], "run: python scripts/notebook_opening.py --write"
    notebook = nbformat.read(path, as_version=4)
    tagged = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1 and "profile =" in tagged[0].source, f"{path.name}: one parameters cell, with profile"


def test_the_opening_check_fails_on_a_stale_badge_and_install_cell(tmp_path):
    notebook = nbformat.read(NOTEBOOKS[0], as_version=4)
    notebook.cells[0].source = notebook.cells[0].source.replace("colab.research.google.com/github/", "example.org/")
    notebook.cells[1].source += "\nprint('edited')"
    stale = tmp_path / NOTEBOOKS[0].name
    stale.write_text(nbformat.writes(notebook))
    assert len(opening.opening_problems(stale)) == 2
    fixed = opening.with_opening(nbformat.read(stale, as_version=4), stale.stem)
    stale.write_text(nbformat.writes(fixed))
    assert opening.opening_problems(stale) == []


def test_every_page_in_the_table_of_contents_is_made_by_a_notebook():
    import yaml

    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    listed = {chapter["file"].removeprefix("executed/") for part in toc["parts"] for chapter in part["chapters"]
              if chapter["file"].startswith("executed/")}
    made = {page.name for page in list_pages(notebook_dir=REPO / "notebooks")}
    assert listed == made
    for stem, parameters, _ in PAGE_VARIANTS.values():  # a variant's parameters are the notebook's own
        source = next(c.source for c in nbformat.read(REPO / "notebooks" / f"{stem}.ipynb", as_version=4).cells
                      if "parameters" in c.metadata.get("tags", []))
        assert all(f"{name} =" in source for name in parameters), (stem, parameters)


def _draws(source: str) -> bool:
    """Whether a cell's own statements (not the bodies of the functions it defines) draw a figure."""
    import ast

    drawing = ("plt.", "sns.", "plot_sources(", "plot_differences(", "gallery(", "panel_grid(", "plot_ablations(")
    statements = [node for node in ast.parse(source).body if not isinstance(node, ast.FunctionDef | ast.ClassDef)]
    return any(call in ast.unparse(node) for node in statements for call in drawing)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_figure_cell_has_a_caption(path):
    """A cell that draws (matplotlib, seaborn or a gallery) shows its figure with a caption under it."""
    for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
        if cell.cell_type == "code" and index > 1 and _draws(cell.source):
            caption = cell.metadata.get("mystnb", {}).get("figure", {}).get("caption", "")
            assert caption.strip(), f"{path.name}, cell {index}: a figure without a caption"
