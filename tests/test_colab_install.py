"""Colab: the book's ways into a notebook, the notebooks' install cell, and MixQ's shipped data when installed.

The slow test plays a fresh Colab runtime: Colab's own packages are this project's venv (torch, diffusers, timm,
papermill, ...) less MixQ itself, and the repository is this checkout's last commit, cloned the way the install
cell clones it. It runs a whole notebook, install cell included, from a folder outside the repository.
"""

import importlib.util
import os
import shutil
import subprocess
import sysconfig
import venv
from pathlib import Path

import nbformat
import pytest
import yaml

from mixq_core import models, shipped
from mixq_core.reproduce import PAGE_VARIANTS

REPO = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("notebook_opening", REPO / "scripts" / "notebook_opening.py")
opening = importlib.util.module_from_spec(spec)
spec.loader.exec_module(opening)
needs_git_checkout = pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(),
                                        reason="needs git and a checkout")


def test_badges_and_launch_buttons_open_the_notebook_sources():
    """The header's launch buttons would open the page's own file, executed/<page>.ipynb, which the repository does
    not hold (and for 03_ptq_cnn / 04_ptq_vit is no notebook's name): they stay off, and each page's badge, made
    from the one repository setting, opens the source notebook."""
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    launch = config.get("launch_buttons", {})
    assert not any(launch.get(key) for key in ("colab_url", "binderhub_url", "jupyterhub_url", "deepnote_url"))
    assert not launch.get("thebe") and not config.get("html", {}).get("use_edit_page_button")
    url, branch = opening.repository()
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        title = nbformat.read(path, as_version=4).cells[0].source
        assert f"github/{url.removeprefix('https://github.com/')}/blob/{branch}/notebooks/{path.name})" in title
    for page, (stem, _, _) in PAGE_VARIANTS.items():
        assert opening.colab_badge(stem).endswith(f"/notebooks/{stem}.ipynb)"), page


@needs_git_checkout
def test_the_shipped_list_is_the_committed_data():
    """mixq_core/shipped.sha256 lists every file git tracks under assets/ and the published records, with its
    sha256: what an installed MixQ fetches and checks."""
    assert shipped.manifest_text(REPO) == shipped.MANIFEST.read_text(), (
        "run `python -m mixq_core.shipped_cli manifest --write`")


def test_fetch_copies_checked_files_and_refuses_other_ones(tmp_path, monkeypatch):
    listed = ["assets/manifest.json", next(iter(shipped.read_manifest()))]
    subset = tmp_path / "shipped.sha256"
    subset.write_text("".join(f"{models.sha256_of(REPO / name)}  {name}\n" for name in listed))
    monkeypatch.setattr(shipped, "MANIFEST", subset)
    home = shipped.fetch(REPO, tmp_path / "home")
    assert sorted(p.relative_to(home).as_posix() for p in home.rglob("*") if p.is_file()) == sorted(listed)
    assert shipped.problems(home) == []
    other = tmp_path / "other"
    for name in listed:
        (other / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, other / name)
    (other / listed[0]).write_text("{}")
    with pytest.raises(shipped.ShippedDataMissing, match=r"assets/manifest.json has sha256 [0-9a-f]{64}, not the"):
        shipped.fetch(other, tmp_path / "second")
    assert not (tmp_path / "second").exists()  # nothing is copied unless everything checks


def test_an_installed_mixq_without_its_data_says_how_to_fetch_them(tmp_path, monkeypatch):
    monkeypatch.setenv("MIXQ_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(shipped, "checkout", lambda: None)
    monkeypatch.setattr(models, "checkout", lambda: None)
    assert shipped.default_assets_dir() == tmp_path / "home" / "assets"
    with pytest.raises(shipped.ShippedDataMissing) as missing:
        models.verified_asset("resnet18.safetensors", shipped.default_assets_dir())
    assert str(missing.value).startswith(f"{tmp_path}/home/assets/manifest.json (needed for resnet18.safetensors) is "
                                         "missing: an installed MixQ keeps")
    assert "python -m mixq_core.shipped_cli fetch --from CLONE" in str(missing.value)
    with pytest.raises(shipped.ShippedDataMissing, match="the published records .*/home/results/ptq/mini-full"):
        shipped.check_published(tmp_path / "home" / "results", "ptq/mini-full")
    shipped.check_published(tmp_path / "elsewhere", "ptq/mini-full")  # an empty results folder of one's own
    shipped.check_published(tmp_path / "home" / "results", "ptq/mini")  # records made here, none yet


def _colab_like_python(tmp_path: Path) -> Path:
    """A fresh venv that sees this venv's packages except MixQ (through a .pth file), as Colab's Python has
    torch and the rest but not MixQ."""
    preinstalled = tmp_path / "preinstalled"
    preinstalled.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if "mixq" not in entry.name.lower() and not entry.name.endswith(".pth"):
            (preinstalled / entry.name).symlink_to(entry)
    venv.EnvBuilder(with_pip=True).create(tmp_path / "venv")
    python = tmp_path / "venv" / "bin" / "python"
    # venv's own old setuptools would hide the preinstalled one, which torch's metadata asks for.
    subprocess.run([python, "-m", "pip", "uninstall", "-q", "-y", "setuptools"], capture_output=True, check=True)
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "colab_packages.pth").write_text(f"{preinstalled}\n")
    return python


@pytest.mark.slow
@needs_git_checkout
def test_a_notebook_runs_in_colab_from_a_non_editable_install_outside_the_repository(tmp_path):
    branch = subprocess.run(["git", "rev-parse", "--abbrev-ref", "HEAD"], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.strip()
    url, setting_branch = opening.repository()
    setting = f'REPOSITORY, BRANCH = "{url}", "{setting_branch}"'
    python = _colab_like_python(tmp_path)
    content, home = tmp_path / "content", tmp_path / "mixq-home"
    content.mkdir()
    # The notebook as its badge opens it, whose install cell clones this checkout's last commit instead.
    notebook = nbformat.read(REPO / "notebooks" / "00_models.ipynb", as_version=4)
    assert notebook.cells[1].source == opening.install_source() and setting in notebook.cells[1].source
    notebook.cells[1].source = notebook.cells[1].source.replace(setting, f'REPOSITORY, BRANCH = "file://{REPO}", '
                                                                         f'"{branch}"')
    nbformat.write(notebook, content / "00_models.ipynb")
    # Offline: every dependency is preinstalled, and the build backend (setuptools) is taken from there too.
    env = {**{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "MIXQ_ASSETS",
                                                                "MIXQ_RESULTS", "JUPYTER_PATH")},
           "PATH": f"{python.parent}:{os.environ['PATH']}", "PIP_NO_INDEX": "1", "PIP_NO_BUILD_ISOLATION": "0",
           "PYTHONNOUSERSITE": "1", "MIXQ_HOME": str(home), "HF_HUB_OFFLINE": "1", "MIXQ_QUIET": "1",
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([python, "-m", "papermill", "00_models.ipynb", "executed.ipynb", "-p", "profile", "smoke",
                           "-k", "python3", "--no-progress-bar"], cwd=content, env=env, capture_output=True,
                          text=True, timeout=1500)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert sorted(p.name for p in content.iterdir()) == ["00_models.ipynb", "executed.ipynb"]  # no clone left here
    # Installed as a wheel into the runtime's site-packages; its data and records live in the data folder.
    check = ("import mixq_core; from mixq_core.models import ASSETS_DIR; from mixq_core.results import RESULTS_DIR; "
             "from mixq_core.report import grid_records; print(mixq_core.__file__, ASSETS_DIR, RESULTS_DIR, "
             "len(grid_records('mini-full')), sep='\\n')")
    later = subprocess.run([python, "-c", check], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert later.returncode == 0, later.stderr[-3000:]
    module, assets, results_dir, published = later.stdout.strip().splitlines()[-4:]
    assert Path(module).is_relative_to(tmp_path / "venv") and "site-packages" in module
    assert (Path(assets), Path(results_dir)) == (home / "assets", home / "results") and int(published) > 0
    assert len(list((home / "results" / "fp").rglob("*.json"))) == 2  # the notebook's records: resnet18, deit_mini
    verify = subprocess.run([python, "-m", "mixq_core.shipped_cli", "verify"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert verify.returncode == 0 and "sha256 checked" in verify.stdout, verify.stderr
    # Without its data folder, the first model load says what is missing and how to fetch it.
    bare = subprocess.run([python, "-c", "from mixq_core.models import load_mini_model; load_mini_model('resnet18')"],
                          cwd=tmp_path, env={**env, "MIXQ_HOME": str(tmp_path / "empty")}, capture_output=True,
                          text=True, timeout=300)
    assert bare.returncode != 0 and "python -m mixq_core.shipped_cli fetch --from CLONE" in bare.stderr
    # Run again in the same runtime: MixQ is found, nothing is cloned or installed twice.
    again = subprocess.run([python, "-c", notebook.cells[1].source], cwd=content, env=env, capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0 and again.stdout == again.stderr == "", again.stderr[-3000:]
