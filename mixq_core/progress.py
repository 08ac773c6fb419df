"""Progress bars that go quiet under ``MIXQ_QUIET=1`` (for logs and CI)."""

import os

from tqdm.auto import tqdm


def quiet() -> bool:
    """True when progress bars should be hidden."""
    return os.environ.get("MIXQ_QUIET", "0") not in ("", "0", "false", "False")


def progress(iterable=None, **kwargs):
    """``tqdm.auto.tqdm`` with ``disable`` set from ``MIXQ_QUIET``."""
    kwargs.setdefault("disable", quiet())
    kwargs.setdefault("leave", False)
    return tqdm(iterable, **kwargs)
