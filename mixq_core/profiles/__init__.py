"""Profiles: named parameter sets (``mini``, ``smoke``, ``imagenet``) stored as YAML beside this file.

A profile is only data; no code branches on its name. ``load_profile("mini")`` returns the
parsed mapping, ``PROFILE_NAMES`` lists the built-in ones. Each file is read and checked once per
process (again only when it changes on disk); every caller gets its own deep copy, free to change.
A profile may start with ``extends: <other>``: it then holds the other's keys, its own replacing them.

Users add their own profiles without editing the package: :func:`write_profile` writes one
(usually ``extends:`` a built-in one, with a few keys changed) into a folder and registers
that folder; folders listed in the environment variable ``MIXQ_PROFILES`` (separated like
``PATH``) are searched too. A user profile cannot take a built-in profile's name.

Every profile file is checked against :data:`PROFILE_SCHEMA` when it is loaded: an unknown key (with the
closest known one suggested), a value of the wrong type or range, YAML that does not parse, a file that
is not a mapping, or ``extends`` chains that loop are refused with one message naming the file. A new
profile key is added to the schema, with what it accepts.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import yaml

from ..errors import ConfigError, unknown_name
from ..prompts import VOCABULARIES
from ..sources import source_names
from ..validate import (
    BITS,
    GUIDANCE,
    RESOLUTION,
    SEED,
    SET_SIZE,
    STEPS,
    Bounds,
    Either,
    Fields,
    Flag,
    ListOf,
    MapOf,
    Maybe,
    OneOf,
    Text,
)

PROFILE_DIR = Path(__file__).resolve().parent
PROFILE_NAMES = sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))
PROFILES_ENV = "MIXQ_PROFILES"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")  # a plain name: never a path
_registered_dirs: list[Path] = []
# Checked profile files by path, with the (mtime, size) they were read at: a file is parsed once per process.
_checked_files: dict[Path, tuple[tuple[int, int], dict]] = {}


def _vocabularies() -> list[str]:
    return list(VOCABULARIES)  # read when a profile is checked: a vocabulary added since counts


def _sources() -> list[str]:
    return list(source_names())  # likewise a source registered since


_BITS = ListOf(BITS, length=2)  # [weight bits, activation bits]
_GRID = {"models": ListOf(Text()), "bits": ListOf(_BITS), "data": ListOf(OneOf(_sources)), "seeds": ListOf(SEED),
         "n_calib": SET_SIZE, "iters": Bounds(0, None)}
_DATASETS = OneOf(("fashion-mnist", "imagenet-folder"))  # the real datasets of mixq_core.data
# What a profile file may hold. Maybe(...): null is accepted, where the code reads null as "not set" (a
# profile that extends another drops the base's grid sections this way).
PROFILE_SCHEMA = Fields({
    "extends": Text(),
    "engine": Bounds(1, None),
    "round_weight": Maybe(MapOf(Bounds(0, None, integer=False))),
    "dataset": _DATASETS,
    "vocabulary": OneOf(_vocabularies),
    "classes": Maybe(ListOf(Either((Bounds(0, None), Text())))),
    "image_size": Bounds(1, 4096),
    "models": ListOf(Text()),
    "pretrained_tags": Maybe(MapOf(Text())),
    "weights": OneOf(("assets", "timm-pretrained", "timm-random")),
    "eval_data": Fields({"source": _DATASETS, "split": OneOf(("train", "test"))}, required=("source",)),
    "eval_batch_size": Bounds(1, None),
    "eval_limit": Maybe(Bounds(1, None)),
    "loader_workers": Bounds(0, 256),
    "generator": Text(),
    "steps": STEPS,
    "guidance": GUIDANCE,
    "resolution": RESOLUTION,
    "synthesis_batch_size": Bounds(1, None),
    "synthesis_dtype": Maybe(OneOf(("float16", "fp16", "half", "bfloat16", "bf16", "float32", "fp32"))),
    "n_synth": SET_SIZE,
    "n_calib": SET_SIZE,
    "iters": Bounds(0, None),
    "first_last_8bit": Flag(),
    "quant_compile": Flag(),
    "probe_images": Bounds(1, None),
    "gpu": Maybe(Flag()),
    "grid_cnn": Maybe(Fields({**_GRID, "extra": ListOf(Fields(_GRID))}, required=("models", "bits", "data", "seeds"))),
    "grid_vit": Maybe(Fields({**_GRID, "extra": ListOf(Fields(_GRID))}, required=("models", "bits", "data", "seeds"))),
    "ablations": Maybe(Fields({
        "model": Text(), "bits": _BITS, "seeds": ListOf(SEED), "n_calib": SET_SIZE, "iters": Bounds(0, None),
        "k": ListOf(Bounds(1, 16)), "n_calib_sizes": ListOf(SET_SIZE),
        "guidance": ListOf(GUIDANCE), "partners": ListOf(OneOf(("random", "near", "far")))},
        required=("model", "bits", "seeds", "n_calib", "iters", "k", "n_calib_sizes", "guidance", "partners"))),
    "tables_from": Maybe(Text()),
    "worlds": Maybe(Fields({"profiles": MapOf(Text()), "run": Flag()}, required=("profiles",))),
    # reading_pictures: mixup-prompted pictures shown to the plain and the mix-trained classifiers (notebook 11)
    "regimes": Maybe(Fields({"short": Text(), "long": Text(), "earlier": Text(), "run": Flag(),
                             "reading_pictures": Bounds(1, 10_000), "convergence_steps": Bounds(1, None)},
                            required=("short", "long"))),
})
# What every profile holds once its `extends` chain is merged.
REQUIRED_KEYS = ("dataset", "vocabulary", "models", "weights", "eval_data", "eval_batch_size", "generator", "steps",
                 "guidance", "resolution", "n_calib", "n_synth")


def profile_dirs() -> list[Path]:
    """Where profiles are looked up, built-in folder first."""
    from_env = [Path(p) for p in os.environ.get(PROFILES_ENV, "").split(os.pathsep) if p]
    return [PROFILE_DIR, *_registered_dirs, *from_env]


def profile_names() -> list[str]:
    """Every profile that :func:`load_profile` can find: built-in and user ones."""
    return sorted({p.stem for folder in profile_dirs() if folder.is_dir() for p in folder.glob("*.yaml")})


def check_profile_name(name) -> str:
    """``name`` if it is a plain profile name (never a path: profiles are found by name only)."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ConfigError(f"profile name {name!r} is not a plain name (letters, digits, '-', '_', '.', '+'; no "
                          f"'/'): profiles are looked up by name in {PROFILE_DIR} and the folders of ${PROFILES_ENV}; "
                          "put your own YAML file in such a folder")
    return name


def _profile_path(name: str) -> Path:
    check_profile_name(name)
    found = list(dict.fromkeys(path.resolve() for folder in profile_dirs()
                               if (path := folder / f"{name}.yaml").is_file()))
    if not found:
        raise unknown_name("profile", name, profile_names())
    if len(found) > 1:  # a user profile would be shadowed without a word
        raise ConfigError(f"profile {name!r} is defined twice, in {found[0]} and {found[1]}; a user profile cannot "
                          "take the name of a built-in profile or of another user profile: rename one")
    return found[0]


def _read_profile_file(name: str, path: Path) -> dict:
    """The mapping in profile file ``path``, checked against :data:`PROFILE_SCHEMA` (a deep copy of the one
    read earlier, unless the file changed since)."""
    stat = path.stat()
    stamp = (stat.st_mtime_ns, stat.st_size)
    cached = _checked_files.get(path)
    if cached is None or cached[0] != stamp:
        cached = _checked_files[path] = (stamp, _parse_profile_file(name, path))
    return copy.deepcopy(cached[1])


def _parse_profile_file(name: str, path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"profile {name!r}: {path} is not valid YAML ({where}{problem})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"profile {name!r}: {path} is not a UTF-8 text file") from None
    data = {} if data is None else data
    try:
        return PROFILE_SCHEMA.check(data, "")
    except ConfigError as exc:
        raise ConfigError(f"profile {name!r} ({path}): {exc}") from None


def load_profile(name: str) -> dict:
    """The profile ``name`` as a dict, checked against :data:`PROFILE_SCHEMA`: the caller's own copy, which it may
    change (files are parsed once per process, see :func:`_read_profile_file`)."""
    profile = _load(name, ())
    missing = [key for key in REQUIRED_KEYS if profile.get(key) is None]
    if missing:
        raise ConfigError(f"profile {name!r} lacks {', '.join(missing)}; give them, or start it with "
                          "`extends: mini` (or another profile) to take the rest from there")
    return profile


def _load(name: str, chain: tuple[str, ...]) -> dict:
    """Profile ``name`` merged over its ``extends`` chain; ``chain`` holds the profiles that extend it."""
    if name in chain:
        raise ConfigError(f"profiles extend each other in a loop: {' → '.join((*chain, name))}")
    profile = _read_profile_file(name, _profile_path(name))
    base = profile.pop("extends", None)
    if base is not None:
        profile = {**_load(base, (*chain, name)), **profile}
    profile["name"] = name
    return profile


def write_profile(name: str, folder: str | os.PathLike, extends: str | None = None, **settings) -> dict:
    """Write the user profile ``folder/name.yaml`` (``extends`` plus ``settings``), register
    ``folder`` for lookups, and return the loaded profile.

    Rewriting a user profile with other settings is allowed (records are keyed by the
    settings that matter, so old records are not mixed up with new ones); taking a built-in
    profile's name is not.
    """
    check_profile_name(name)
    if name in PROFILE_NAMES:
        raise ConfigError(f"{name!r} is a built-in profile; give the user profile another name")
    if extends is not None:
        load_profile(extends)  # fail now on an unknown base, not at first use
    content = {**({"extends": extends} if extends else {}), **settings}
    try:
        PROFILE_SCHEMA.check(content, "")  # nothing is written for a profile that would not load
    except ConfigError as exc:
        raise ConfigError(f"profile {name!r}: {exc}") from None
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(content, sort_keys=False)
    tmp = folder / f".{name}.yaml.tmp"
    tmp.write_text(text)
    tmp.replace(folder / f"{name}.yaml")
    _checked_files.pop((folder / f"{name}.yaml").resolve(), None)  # read anew even where mtime and size match
    if folder.resolve() not in [d.resolve() for d in _registered_dirs]:
        _registered_dirs.append(folder)
    return load_profile(name)
