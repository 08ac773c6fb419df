"""Profiles: named parameter sets (``mini``, ``smoke``, ``imagenet``) stored as YAML beside this file.

A profile is only data; no code branches on its name. ``load_profile("mini")`` returns the
parsed mapping, ``PROFILE_NAMES`` lists what exists. A profile may start with
``extends: <other>``: it then holds the other's keys, its own replacing them.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ..errors import ConfigError, unknown_name

PROFILE_DIR = Path(__file__).resolve().parent
PROFILE_NAMES = sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def load_profile(name: str) -> dict:
    """The profile ``name`` as a dict (a fresh copy each call)."""
    path = PROFILE_DIR / f"{name}.yaml"
    if name not in PROFILE_NAMES or not path.exists():
        raise unknown_name("profile", name, PROFILE_NAMES)
    with open(path) as f:
        profile = yaml.safe_load(f)
    base = profile.pop("extends", None)
    if base is not None:
        if base == name:
            raise ConfigError(f"profile {name!r} extends itself")
        profile = {**load_profile(base), **profile}
    profile["name"] = name
    return profile
