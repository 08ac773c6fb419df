"""Profiles: named parameter sets (``mini``, ``smoke``, ``imagenet``) stored as YAML beside this file.

A profile is only data; no code branches on its name. ``load_profile("mini")`` returns the
parsed mapping, ``PROFILE_NAMES`` lists the built-in ones. A profile may start with
``extends: <other>``: it then holds the other's keys, its own replacing them.

Users add their own profiles without editing the package: :func:`write_profile` writes one
(usually ``extends:`` a built-in one, with a few keys changed) into a folder and registers
that folder; folders listed in the environment variable ``MIXQ_PROFILES`` (separated like
``PATH``) are searched too. A user profile cannot take a built-in profile's name.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from ..errors import ConfigError, unknown_name

PROFILE_DIR = Path(__file__).resolve().parent
PROFILE_NAMES = sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))
PROFILES_ENV = "MIXQ_PROFILES"
_registered_dirs: list[Path] = []


def profile_dirs() -> list[Path]:
    """Where profiles are looked up, built-in folder first."""
    from_env = [Path(p) for p in os.environ.get(PROFILES_ENV, "").split(os.pathsep) if p]
    return [PROFILE_DIR, *_registered_dirs, *from_env]


def profile_names() -> list[str]:
    """Every profile that :func:`load_profile` can find: built-in and user ones."""
    return sorted({p.stem for folder in profile_dirs() if folder.is_dir() for p in folder.glob("*.yaml")})


def _profile_path(name: str) -> Path:
    for folder in profile_dirs():
        if (path := folder / f"{name}.yaml").exists():
            return path
    raise unknown_name("profile", name, profile_names())


def load_profile(name: str) -> dict:
    """The profile ``name`` as a dict (a fresh copy each call)."""
    with open(_profile_path(name)) as f:
        profile = yaml.safe_load(f) or {}
    base = profile.pop("extends", None)
    if base is not None:
        if base == name:
            raise ConfigError(f"profile {name!r} extends itself")
        profile = {**load_profile(base), **profile}
    profile["name"] = name
    return profile


def write_profile(name: str, folder: str | os.PathLike, extends: str | None = None, **settings) -> dict:
    """Write the user profile ``folder/name.yaml`` (``extends`` plus ``settings``), register
    ``folder`` for lookups, and return the loaded profile.

    Rewriting a user profile with other settings is allowed (records are keyed by the
    settings that matter, so old records are not mixed up with new ones); taking a built-in
    profile's name is not.
    """
    if name in PROFILE_NAMES:
        raise ConfigError(f"{name!r} is a built-in profile; give the user profile another name")
    if extends is not None:
        load_profile(extends)  # fail now on an unknown base, not at first use
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump({**({"extends": extends} if extends else {}), **settings}, sort_keys=False)
    tmp = folder / f".{name}.yaml.tmp"
    tmp.write_text(text)
    tmp.replace(folder / f"{name}.yaml")
    if folder.resolve() not in [d.resolve() for d in _registered_dirs]:
        _registered_dirs.append(folder)
    return load_profile(name)
