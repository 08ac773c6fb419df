"""The notebooks' install cell, run where MixQ is not installed, as in a fresh Colab runtime: it clones the
repository, pip-installs the clone and works in it. Colab's own packages are played by this project's venv
(torch, diffusers, timm, ...), less MixQ itself; the clone comes from this checkout's last commit."""

import importlib.util
import os
import shutil
import subprocess
import sysconfig
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("notebook_opening", REPO / "scripts" / "notebook_opening.py")
opening = importlib.util.module_from_spec(spec)
spec.loader.exec_module(opening)


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
@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_install_cell_installs_a_plain_clone_in_a_fresh_environment(tmp_path):
    branch = subprocess.run(["git", "rev-parse", "--abbrev-ref", "HEAD"], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.strip()
    url, setting_branch = opening.repository()
    setting = f'REPOSITORY, BRANCH = "{url}", "{setting_branch}"'
    cell = opening.install_source()
    assert setting in cell  # the badge's repository, from _config.yml
    cell = cell.replace(setting, f'REPOSITORY, BRANCH = "file://{REPO}", "{branch}"')
    python = _colab_like_python(tmp_path)
    work = tmp_path / "content"
    work.mkdir()
    # Offline: every dependency is preinstalled, and the build backend (setuptools) is taken from there too.
    env = {**{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}, "PIP_NO_INDEX": "1",
           "PIP_NO_BUILD_ISOLATION": "0", "PYTHONNOUSERSITE": "1"}
    check = "import os, mixq_core; print(mixq_core.__file__); print(os.getcwd())"
    done = subprocess.run([python, "-c", f"{cell}\n{check}"], cwd=work, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    clone = work / "mixq"
    module_file, cwd = done.stdout.strip().splitlines()[-2:]
    assert Path(module_file) == clone / "mixq_core" / "__init__.py" and Path(cwd) == clone
    # A later kernel finds the installed clone, with its profiles and shipped assets, from anywhere.
    later = subprocess.run([python, "-c", "from mixq_core.models import ASSETS_DIR; from mixq_core.profiles import "
                            "load_profile; load_profile('imagenet'); print(ASSETS_DIR)"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=300)
    assert later.returncode == 0, later.stderr[-3000:]
    assert Path(later.stdout.strip()) == clone / "assets" and (clone / "assets" / "manifest.json").exists()
    # Run again in the same runtime: MixQ is found, nothing is cloned or installed twice.
    again = subprocess.run([python, "-c", f"{cell}\n{check}"], cwd=work, env=env, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0 and "Cloning" not in again.stderr, again.stderr[-3000:]
