"""Checks of what users hand MixQ, in one place: numbers, devices, output paths, JSON files, set folders,
and the small schema language that profiles are checked with (:mod:`mixq_core.profiles`).

Every check raises a :class:`~mixq_core.errors.MixQError` subclass whose one-line message says what was
wrong and what is accepted. The ``mixq`` command runs them before any long work starts; the library runs
the same ones where user data comes in (profiles, set folders, shipped manifests).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .errors import BrokenFileError, ConfigError, DatasetLayoutError, OutputPathError, did_you_mean

# The largest synthetic or calibration set a command accepts: every image is a file, and a set's prompt
# records are held in memory (QDrop's setting is 1024 images; the published grids use at most 1024).
MAX_IMAGES = 100_000
MAX_SEED = 2**31 - 1
MIN_FREE_BYTES = 1 << 20  # an output disk with less than this free is full for our purpose
SET_IMAGE_MODES = ("L", "RGB")  # what `mixq synthesize` writes (RGB) and greyscale sets made by hand


# ----------------------------------------------------------------------------- numbers and schemas


@dataclass(frozen=True)
class Bounds:
    """Accepted numbers: integers (``integer=True``) or finite floats from ``low`` to ``high`` (None: open),
    and multiples of ``multiple_of`` when given. Also an argparse ``type`` (:meth:`parse`)."""

    low: float | None = None
    high: float | None = None
    integer: bool = True
    multiple_of: int | None = None

    def span(self) -> str:
        """The range in a few characters: ``1..1000``, ``≥ 0``, ``multiples of 8 in 8..4096``."""
        if self.low is not None and self.high is not None:
            text = f"{self.low}..{self.high}"
        elif self.low is not None:
            text = f"≥ {self.low}"
        elif self.high is not None:
            text = f"≤ {self.high}"
        else:
            text = "any"
        return f"multiples of {self.multiple_of} in {text}" if self.multiple_of else text

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a finite number"
        if self.multiple_of:
            kind = f"a multiple of {self.multiple_of}"
        if self.low is not None and self.high is not None:
            return f"{kind} from {self.low} to {self.high}"
        if self.low is not None:
            return f"{kind} ≥ {self.low}"
        return f"{kind} ≤ {self.high}" if self.high is not None else kind

    def accepts(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, int if self.integer else (int, float)):
            return False
        return (math.isfinite(value) and (self.low is None or value >= self.low)
                and (self.high is None or value <= self.high)
                and (not self.multiple_of or value % self.multiple_of == 0))

    def check(self, value, what: str):
        """``value`` if it is accepted, else :class:`ConfigError` naming ``what``."""
        if not self.accepts(value):
            raise ConfigError(f"{what} must be {self.describe()}, got {_shown(value)}")
        return value

    def parse(self, text: str):
        """argparse ``type``: the number written in ``text``, if accepted."""
        import argparse

        try:
            value = int(text) if self.integer else float(text)
        except ValueError:
            value = None
        if value is None or not self.accepts(value):
            raise argparse.ArgumentTypeError(f"must be {self.describe()}, got {text!r}")
        return value


# The ranges of settings that the command line, the profile schema and the library check alike.
SEED = Bounds(0, MAX_SEED)
BITS = Bounds(2, 8)
SET_SIZE = Bounds(1, MAX_IMAGES)
STEPS = Bounds(1, 1000)  # the generator's solver steps
GUIDANCE = Bounds(0, 100, integer=False)  # classifier-free guidance scale (≤ 1: guidance off)
RESOLUTION = Bounds(8, 4096, multiple_of=8)  # diffusers pipelines take multiples of 8 pixels


def _type_name(value) -> str:
    return {dict: "mapping", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), type(value).__name__)


def _shown(value, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters (an error line stays one readable line)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


@dataclass(frozen=True)
class OneOf:
    """One of a fixed set of strings (``choices`` may be a function, for registries that grow)."""

    choices: tuple | Callable[[], Iterable[str]]

    def names(self) -> list[str]:
        return sorted(self.choices() if callable(self.choices) else self.choices)

    def check(self, value, what: str):
        if value not in self.names():
            raise ConfigError(f"{what} must be one of {', '.join(self.names())}, got {_shown(value)}"
                              f"{did_you_mean(value, self.names())}")
        return value


@dataclass(frozen=True)
class Text:
    """A non-empty string."""

    def check(self, value, what: str):
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{what} must be a non-empty string, got {_type_name(value)} {_shown(value)}")
        return value


@dataclass(frozen=True)
class Flag:
    """true or false."""

    def check(self, value, what: str):
        if not isinstance(value, bool):
            raise ConfigError(f"{what} must be true or false, got {_shown(value)}")
        return value


@dataclass(frozen=True)
class Maybe:
    """``spec``, or null (in a profile that extends another: the base's value is dropped)."""

    spec: object

    def check(self, value, what: str):
        return value if value is None else self.spec.check(value, what)


@dataclass(frozen=True)
class Either:
    """A value that one of ``specs`` accepts (e.g. a class given by name or by id)."""

    specs: tuple

    def check(self, value, what: str):
        for spec in self.specs:
            try:
                return spec.check(value, what)
            except ConfigError:
                continue
        return self.specs[-1].check(value, what)  # raises, with the last spec's message


@dataclass(frozen=True)
class ListOf:
    """A non-empty list of ``item`` (exactly ``length`` of them when given)."""

    item: object
    length: int | None = None

    def check(self, value, what: str):
        if not isinstance(value, list) or not value or (self.length is not None and len(value) != self.length):
            size = f"{self.length} items" if self.length is not None else "a non-empty list"
            raise ConfigError(f"{what} must be a list of {size}, got {_type_name(value)} {_shown(value)}")
        for i, item in enumerate(value):
            self.item.check(item, f"{what}[{i}]")
        return value


@dataclass(frozen=True)
class MapOf:
    """A mapping from names (strings) to ``value`` (may be empty)."""

    value: object

    def check(self, value, what: str):
        if not isinstance(value, dict):
            raise ConfigError(f"{what} must be a mapping (name: value), got {_type_name(value)} {_shown(value)}")
        for key, item in value.items():
            Text().check(key, f"{what} key")
            self.value.check(item, f"{what}.{key}")
        return value


@dataclass(frozen=True)
class Fields:
    """A mapping with known keys: each checked by its spec; unknown ones refused with the closest known key.
    Values are named by their key path (``grid_cnn.seeds[0]``) below ``what`` (empty at the top)."""

    fields: dict
    required: tuple = field(default=())

    def check(self, value, what: str):
        if not isinstance(value, dict):
            raise ConfigError(f"{what + ' ' if what else ''}must be a mapping (key: value lines), got a "
                              f"{_type_name(value)}")
        for key, item in value.items():
            if key not in self.fields:
                raise ConfigError(f"{what + ': ' if what else ''}unknown key {key!r}; accepted: "
                                  f"{', '.join(self.fields)}{did_you_mean(key, self.fields)}")
            self.fields[key].check(item, f"{what}.{key}" if what else key)
        missing = [key for key in self.required if value.get(key) is None]
        if missing:
            raise ConfigError(f"{what or 'the mapping'} lacks {', '.join(missing)}")
        return value


# ----------------------------------------------------------------------------- devices


def resolve_device(device=None):
    """The ``torch.device`` for ``device`` (None: CUDA when available, else the CPU), refusing devices that
    MixQ does not run on or that this machine lacks."""
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    accepted = "cpu, cuda, cuda:N"
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"unknown device {str(device)!r}; accepted: {accepted}") from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"device {str(device)!r}: no CUDA GPU is visible here (torch {torch.__version__}, "
                              f"CUDA build {torch.version.cuda or 'none'}); use cpu")
        if parsed.index is not None and parsed.index >= count:
            raise ConfigError(f"device {str(device)!r}: this machine has {count} CUDA GPU(s); accepted: "
                              f"cpu, cuda, cuda:0..cuda:{count - 1}")
    elif parsed.type != "cpu":
        raise ConfigError(f"device {str(device)!r} is not supported; accepted: {accepted}")
    return parsed


# ----------------------------------------------------------------------------- output paths


def _nearest_existing(path: Path, what: str) -> Path:
    """The closest ancestor of ``path`` that exists; it must be a folder."""
    ancestor = path
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputPathError(f"cannot write {what} {path}: {ancestor} is a file, not a folder")
    return ancestor


def _check_writable(folder: Path, what: str, target: Path) -> None:
    """Make and delete an empty file in ``folder`` (the one test that sees permissions, read-only mounts and
    pseudo filesystems alike), then check that its disk has room."""
    try:
        handle, probe = tempfile.mkstemp(prefix=".mixq-write-check-", dir=folder)
    except OSError as exc:
        raise OutputPathError(f"cannot write {what} {target}: {folder} is not writable ({exc.strerror}); "
                              "choose another path") from None
    os.close(handle)
    os.remove(probe)
    free = shutil.disk_usage(folder).free
    if free < MIN_FREE_BYTES:
        raise OutputPathError(f"cannot write {what} {target}: the disk holding {folder} is full ({free} bytes free)")


def check_output_dir(path: str | os.PathLike, what: str) -> Path:
    """Check that folder ``path`` exists or can be created, can be written and has room; create nothing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{what} {path} is an existing file; give a folder (created if missing)")
    _check_writable(path if path.is_dir() else _nearest_existing(path, what), what, path)
    return path


def check_output_file(path: str | os.PathLike, what: str) -> Path:
    """Check that file ``path`` can be written (a new file, or a regular one to replace); create nothing."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{what} {path} is a folder; give a file path")
    if path.exists() and not path.is_file():
        raise OutputPathError(f"{what} {path} exists and is not a regular file; give a file path")
    _check_writable(_nearest_existing(path.parent, what), what, path)
    return path


# ----------------------------------------------------------------------------- JSON files


def read_json(path: str | os.PathLike, fix: str) -> dict:
    """The JSON object in ``path``; a damaged file raises :class:`BrokenFileError` saying ``fix``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f"line {exc.lineno}, column {exc.colno}: {exc.msg}" if isinstance(exc, json.JSONDecodeError) else exc
        raise BrokenFileError(f"{path} is not valid JSON ({where}); {fix}") from None
    if not isinstance(data, dict):
        raise BrokenFileError(f"{path} must hold a JSON object, got a {_type_name(data)}; {fix}")
    return data


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """The JSON objects of a ``.jsonl`` file, one per line; a line that is not one names itself.

    Blank lines are refused too (except at the end), so line ``i`` of an error is the file's line ``i``.
    """
    path = Path(path)
    lines = path.read_text().splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    example = '{"file": "images/000000.png", "classes": [3]}'
    entries = []
    for number, line in enumerate(lines, start=1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetLayoutError(f"{path} line {number} is not a JSON object ({exc.msg}); each line holds one, "
                                     f"such as {example}") from None
        if not isinstance(entry, dict):
            raise DatasetLayoutError(f"{path} line {number} is a JSON {_type_name(entry)}, not an object such as "
                                     f"{example}")
        entries.append(entry)
    return entries


# ----------------------------------------------------------------------------- set folders


CLASS_ID = Bounds(0, None)


def check_set_entries(root: Path, entries: list[dict], manifest: Path,
                      num_classes: int | None = None) -> list[tuple[Path, int]]:
    """The ``(image path, label)`` pairs of a set's manifest lines, each line checked: its fields, its class
    ids (below ``num_classes`` when given), an image listed once, inside the set, whole, square, greyscale
    or RGB, of the resolution the line records. The label is the first prompted class."""
    items, seen = [], {}
    for number, entry in enumerate(entries, start=1):
        where = f"{manifest} line {number}"
        if "file" not in entry or not entry.get("classes"):
            raise DatasetLayoutError(f"{where} lacks 'file' or 'classes'; each line must hold at least "
                                     "{\"file\": \"images/<id>.png\", \"classes\": [int, ...]}")
        classes, file = entry["classes"], entry["file"]
        high = f"0..{num_classes - 1}" if num_classes else "integers ≥ 0"
        if not isinstance(classes, list) or not all(CLASS_ID.accepts(c) for c in classes):
            raise DatasetLayoutError(f"{where}: classes must be a list of class ids ({high}), got {_shown(classes)}")
        if num_classes is not None and max(classes) >= num_classes:
            raise DatasetLayoutError(f"{where}: class id {max(classes)} is outside {high} (the {num_classes} "
                                     "classes in use)")
        relative = PurePosixPath(file) if isinstance(file, str) else None
        if relative is None or relative.is_absolute() or ".." in relative.parts or not relative.parts:
            raise DatasetLayoutError(f"{where}: file must be a path inside the set folder, such as "
                                     f"images/000000.png; got {_shown(file)}")
        if file in seen:
            raise DatasetLayoutError(f"{where} repeats {file} of line {seen[file]}; each image is listed once")
        seen[file] = number
        path = root / file
        check_set_image(path, where, entry.get("resolution"))
        items.append((path, classes[0]))
    return items


def check_set_image(path: Path, where: str, resolution: int | None = None) -> None:
    """Check that set image ``path`` is whole (every chunk read and its checksum verified) and of the shape
    a set's images have."""
    from PIL import Image

    if not path.is_file():
        raise DatasetLayoutError(f"{where} names {path}, which is missing")
    try:
        with Image.open(path) as image:
            mode, (width, height) = image.mode, image.size
            image.verify()
    except (OSError, SyntaxError, ValueError) as exc:  # what PIL raises for a damaged or foreign file
        raise DatasetLayoutError(f"{where}: {path} is truncated or not an image ({exc}); delete it and rerun "
                                 "`mixq synthesize` to make it again") from None
    wanted = f"{resolution}×{resolution}" if isinstance(resolution, int) else "square"
    if mode not in SET_IMAGE_MODES or width != height or (isinstance(resolution, int) and width != resolution):
        raise DatasetLayoutError(f"{where}: {path} is a {width}×{height} {mode} image; a set's images are "
                                 f"{wanted} greyscale (L) or RGB")
