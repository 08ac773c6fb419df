"""Test-wide settings: offline, quiet progress bars."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MIXQ_QUIET", "1")
