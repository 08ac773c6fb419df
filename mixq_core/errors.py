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


def check_fields(cls, data: dict, what: str) -> None:
    """Raise :class:`ConfigError` if ``data`` has keys that dataclass ``cls`` has no field for."""
    import dataclasses

    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown {what} {unknown}; accepted: {', '.join(sorted(known))}")


def unknown_name(kind: str, name: str, accepted) -> UnknownNameError:
    """Build the standard 'unknown X' error listing what is accepted."""
    choices = ", ".join(sorted(accepted))
    return UnknownNameError(f"unknown {kind} {name!r}; accepted: {choices}")
