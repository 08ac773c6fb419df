#!/usr/bin/env bash
# Create or reuse the virtual environment in $VENV (default .venv) and install what MixQ needs:
# PyTorch (pinned; skipped where MIXQ_KEEP_TORCH=1, e.g. conda or Colab users with their own torch),
# the package with its dev and book extras, and Fashion-MNIST from Debian where apt-get can get it.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
TORCH_PINS="torch==2.14.1 torchvision==0.29.1"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }

stamp="$VENV/.mixq-installed"
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "[setup] $VENV is up to date"
else
  if [ "${MIXQ_KEEP_TORCH:-0}" = "1" ]; then
    echo "[setup] keeping the installed torch (MIXQ_KEEP_TORCH=1)"
  else
    echo "[setup] installing $TORCH_PINS"
    pip install $TORCH_PINS
  fi
  echo "[setup] installing mixq-core with the dev, book and ray extras"
  pip install -e ".[dev,book,ray]"
  "$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 >/dev/null
  echo "$want" > "$stamp"
fi

sudo=""
[ "$(id -u)" = "0" ] || sudo="sudo -n"
apt_updated=0
apt_install() {  # apt_install PACKAGE WHY: install a Debian package where apt-get can
  command -v apt-get >/dev/null || return 1
  echo "[setup] installing $1 (Debian package): $2"
  if [ "$apt_updated" = "0" ]; then $sudo apt-get update -qq || return 1; apt_updated=1; fi
  $sudo apt-get install -y -qq "$1" >/dev/null
}

fmnist=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
if [ ! -f "$fmnist" ] && [ -z "${MIXQ_FASHION_MNIST:-}" ]; then
  apt_install dataset-fashion-mnist "the mini track's real data" ||
    echo "[setup] could not install dataset-fashion-mnist; MixQ will try torchvision's download" >&2
fi
# Headless Chromium for `make check-book` (the built book opened in a real browser).
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
  apt_install chromium "make check-book opens the built book in it" ||
    echo "[setup] could not install chromium; make check-book will not run" >&2
fi
