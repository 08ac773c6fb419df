"""Progress bars that go quiet under ``MIXQ_QUIET=1`` (for logs and CI), with the libraries' chatter."""

import logging
import os

from tqdm.auto import tqdm

# Loggers that speak on every run of a healthy machine: torch's C++-extension lookup warns "No CUDA runtime
# is found" on a CPU machine with a CUDA toolkit, the first time torch.compile runs; and dynamo warns when a
# compiled function meets more input layouts than its recompile limit, as the activation quantizer does on a
# transformer's transposed attention views: it then runs those calls eagerly, with the same arithmetic
# (quantizers._MaybeCompiled), which is a speed note, not a problem with the result.
CHATTY_LOGGERS = ("torch.utils.cpp_extension", "torch._dynamo")


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
