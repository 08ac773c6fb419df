"""Calibration sources: every name an experiment's ``data`` field accepts, in one registry.

A source says where calibration images come from:

- ``real``: real training images (the upper bound); ``noise``: Gaussian images (the lower bound);
- generated sources draw a set from the profile's text-to-image generator with a prompt strategy of
  :mod:`mixq_core.prompts` (``single``, ``genq``, ``mixup``, ``mixup-embed``);
- image-level baselines take a generated set and mix its *images* before calibration
  (``single-mixup``, ``single-cutmix``: the single-class set with Mixup or CutMix, the kind of baseline
  the paper sets against prompt-level mixing).

Adding a source is one :func:`register_source` call; experiments, reports and notebooks read the registry.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import unknown_name
from .prompts import MULTI_CLASS  # the prompt strategies that name k ≥ 2 classes per prompt


@dataclass(frozen=True)
class CalibrationSource:
    """One calibration source.

    Attributes:
        name: the value of ``ExperimentConfig.data``.
        label: how tables and figures name it.
        prompts: the prompt strategy of the generated set it uses (None: not generated).
        image_mixing: ``mixup`` or ``cutmix``, applied to the set's images before calibration (None: none).
        short: how a table's column heads it, where one column per source leaves little room (None: ``name``);
            a no-break space keeps "+ Mixup" together when a narrow column wraps the heading.
    """

    name: str
    label: str
    prompts: str | None = None
    image_mixing: str | None = None
    short: str | None = None

    @property
    def heading(self) -> str:
        """The short name a table's column uses."""
        return self.short or self.name

    @property
    def generated(self) -> bool:
        """Made by the profile's generator (so generator settings and weights belong to its identity)."""
        return self.prompts is not None

    @property
    def mixes_classes(self) -> bool:
        """Its prompts name several classes, so ``k`` and ``partners`` apply."""
        return self.prompts in MULTI_CLASS


SOURCES: dict[str, CalibrationSource] = {}


def register_source(source: CalibrationSource) -> CalibrationSource:
    """Make ``source`` selectable as ``ExperimentConfig(data=source.name)``; the order of registration is
    the order of tables."""
    SOURCES[source.name] = source
    return source


def get_source(name: str) -> CalibrationSource:
    """The source called ``name``; an unknown name raises an error listing the accepted ones."""
    if name not in SOURCES:
        raise unknown_name("calibration data source", name, SOURCES)
    return SOURCES[name]


def source_names(generated: bool | None = None) -> tuple[str, ...]:
    """Every registered name (``generated=True``: the generated ones; ``False``: the others)."""
    return tuple(name for name, s in SOURCES.items() if generated is None or s.generated == generated)


def source_label(name: str) -> str:
    """The readable name of a source (its own name if it is not registered)."""
    return SOURCES[name].label if name in SOURCES else name


register_source(CalibrationSource("real", "real (upper bound)"))
register_source(CalibrationSource("noise", "Gaussian noise (lower bound)"))
register_source(CalibrationSource("single", "single-class", prompts="single"))
register_source(CalibrationSource("genq", "GenQ (single + energy filter)", prompts="genq", short="GenQ"))
register_source(CalibrationSource("mixup", "mixup-class", prompts="mixup"))
register_source(CalibrationSource("mixup-embed", "mixup (embedding)", prompts="mixup-embed", short="mixup (embedding)"))
register_source(CalibrationSource("single-mixup", "single + image Mixup", prompts="single", image_mixing="mixup",
                                  short="single +\u00a0Mixup"))
register_source(CalibrationSource("single-cutmix", "single + image CutMix", prompts="single", image_mixing="cutmix",
                                  short="single +\u00a0CutMix"))
