"""Progress bars that go quiet under ``MIXQ_QUIET=1`` (for logs and CI), with the libraries' chatter."""

import logging
import os

from tqdm.auto import tqdm

# Loggers that speak on every run of a healthy machine: torch's C++-extension lookup warns "No CUDA runtime
# is found" on a CPU machine with a CUDA toolkit, the first time torch.compile runs.
CHATTY_LOGGERS = ("torch.utils.cpp_extension",)


def quiet() -> bool:
    """True when progress bars should be hidden."""
    return os.environ.get("MIXQ_QUIET", "0") not in ("", "0", "false", "False")


if quiet():
    for _name in CHATTY_LOGGERS:
        logging.getLogger(_name).setLevel(logging.ERROR)


def progress(iterable=None, **kwargs):
    """``tqdm.auto.tqdm`` with ``disable`` set from ``MIXQ_QUIET``."""
    kwargs.setdefault("disable", quiet())
    kwargs.setdefault("leave", False)
    return tqdm(iterable, **kwargs)
