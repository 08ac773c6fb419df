"""Errors raised at MixQ's boundaries (CLI, configs, paths, names).

Every message says what was wrong and what is accepted, so the CLI can print it
as is (no traceback) and a notebook user knows what to change.
"""


class MixQError(Exception):
    """Base class of every error MixQ raises on bad input or missing files."""


class UnknownNameError(MixQError, KeyError):
    """A model, profile, data source or method name that no registry holds."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class DatasetNotFoundError(MixQError, FileNotFoundError):
    """A dataset's files are missing and cannot be fetched."""


class DatasetLayoutError(MixQError, ValueError):
    """A folder exists but is not shaped as the loader expects."""


class ChecksumError(MixQError, ValueError):
    """A shipped file's sha256 differs from the one its manifest records."""


class WeightsUnavailableError(MixQError, OSError):
    """Pretrained weights that cannot be loaded (offline, no local cache)."""


class ConfigError(MixQError, ValueError):
    """A configuration value outside its accepted range."""


class OutputPathError(MixQError, OSError):
    """An output path that cannot be written: an existing file where a folder goes, no permission, a full disk."""

    def __str__(self) -> str:  # OSError would otherwise format its arguments as a tuple
        return str(self.args[0]) if self.args else ""


class BrokenFileError(MixQError, ValueError):
    """A file MixQ reads (a JSON manifest or index) that is damaged or not in its format."""


def check_fields(cls, data: dict, what: str) -> None:
    """Raise :class:`ConfigError` if ``data`` has keys that dataclass ``cls`` has no field for."""
    import dataclasses

    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown {what} {unknown}; accepted: {', '.join(sorted(known))}"
                          f"{did_you_mean(unknown[0], known)}")


def did_you_mean(name, accepted) -> str:
    """``; did you mean 'x'?`` naming the accepted names closest to ``name``, or ``""`` when none is close."""
    import difflib

    close = difflib.get_close_matches(str(name), [str(a) for a in accepted], n=2, cutoff=0.6)
    return f"; did you mean {' or '.join(map(repr, close))}?" if close else ""


def unknown_name(kind: str, name: str, accepted) -> UnknownNameError:
    """Build the standard 'unknown X' error listing what is accepted (and the closest names)."""
    choices = ", ".join(sorted(accepted)) or "none"
    return UnknownNameError(f"unknown {kind} {name!r}; accepted: {choices}{did_you_mean(name, accepted)}")
