"""Public ImageNet PTQ numbers (``mixq_core/reference/``, each row with its source) beside the mini track's, and their
display in the book's column.
"""

from __future__ import annotations

from pathlib import Path

from .tables import num

# The one copy of the published numbers: each row carries its source, the source's address and whether the
# number was read second-hand (quoted by another page) rather than from the source itself. See its README.md.
REFERENCE_CSV = Path(__file__).resolve().parents[1] / "reference" / "imagenet_ptq_reference.csv"


# The reference table names models as their papers do; these are the timm names of the same architectures.
REFERENCE_MODEL_NAMES = {"resnet18": "resnet18", "resnet50": "resnet50", "mobilenetv2": "mobilenetv2_100",
                         "deit_small": "deit_small_patch16_224", "deit_base": "deit_base_patch16_224",
                         "vit_small": "vit_small_patch16_224", "swin_tiny": "swin_tiny_patch4_window7_224"}


# The columns of the comparison table, in the order it shows them: the numbers before the (long) source, so that
# a page narrower than the table shows them without scrolling.
REFERENCE_COLUMNS = ["method", "model", "bits", "calibration", "data-free", "top1", "fp_top1", "drop", "source"]


# How reference_display heads the numeric columns (the data keeps the record fields' names).
REFERENCE_HEADERS = {"top1": "top-1", "fp_top1": "float", "drop": "drop"}  # % and points: the captions say so


# Longest text a cell may hold: pandas cuts longer cell text to this width with "..." when it shows a frame.
MAX_CELL_TEXT = 50


def imagenet_reference():
    """The published ImageNet numbers shipped with the package, one row each with its ``source``, ``url`` and
    ``second_hand`` flag; ``model`` is the timm architecture name, ``bits`` reads ``W4A4`` (or ``FP32``), and
    ``drop`` is the fall from full precision (empty where the source gives no full-precision top-1).
    A second-hand row's ``source`` ends in ``(second-hand)``, so every table that shows it says so."""
    import pandas as pd

    frame = pd.read_csv(REFERENCE_CSV, keep_default_na=False, na_values={"top1": [""], "fp_top1": [""]})
    frame["model"] = [REFERENCE_MODEL_NAMES.get(name, name.split(".")[0]) for name in frame["model"]]
    frame["bits"] = [f"W{w}A{a}" if w < 32 else "FP32" for w, a in zip(frame["w_bits"], frame["a_bits"], strict=True)]
    frame["drop"] = (frame["fp_top1"] - frame["top1"]).round(2)
    second_hand = frame["second_hand"] == "yes"
    frame.loc[second_hand, "source"] = frame.loc[second_hand, "source"] + " (second-hand)"
    frame["data-free"] = frame["data_free"]
    return frame


def beside_reference(frame, models: list[str] | None = None):
    """This run's records (a :func:`records_frame`) and the quantized reference rows of the same models
    (``models``, default: those in ``frame``, or all when it is empty), one row each, with the columns of
    :data:`REFERENCE_COLUMNS`: the method and its source in columns of their own, so that no cell's text is
    long enough for pandas to cut it. Show it with :func:`reference_display`."""
    import pandas as pd

    reference = imagenet_reference()
    reference = reference[reference["bits"] != "FP32"]
    models = models or (sorted(set(frame["model"])) if len(frame) else sorted(set(reference["model"])))
    theirs = reference[reference["model"].isin(models)]
    if not len(frame):
        return theirs[REFERENCE_COLUMNS].reset_index(drop=True)
    ours = frame.assign(source="MixQ (this run)", method=frame["method"] + " from " + frame["data"],
                        calibration=frame["data"] + " " + frame["n_calib"].astype(str),
                        **{"data-free": ["no" if data == "real" else "yes" for data in frame["data"]]})
    return pd.concat([theirs[REFERENCE_COLUMNS], ours[REFERENCE_COLUMNS]], ignore_index=True)


def reference_display(table):
    """A :func:`beside_reference` table as it should be shown: every cell's full text, two decimals, a dash
    where a source gives no number (as in every table of the book), no index, in a container that scrolls
    sideways when the page is narrow."""
    numbers = [c for c in ("top1", "fp_top1", "drop") if c in table.columns]
    # Names and numbers stay on one line; the two columns of prose wrap, and the text is a size smaller, so that
    # the table fits the book's column at 1280 px and scrolls sideways only on a phone.
    prose = {column: [{"selector": "td", "props": [("white-space", "normal"), ("min-width", "8em")]}]
             for column in ("calibration", "source") if column in table.columns}
    return (table.style.hide(axis="index").format(lambda v: num(v, ".2f"), subset=numbers, na_rep="—")
            .relabel_index([REFERENCE_HEADERS.get(c, c) for c in table.columns], axis="columns")
            .set_table_attributes('class="dataframe mixq-reference"')
            .set_table_styles([{"selector": "", "props": [("display", "block"), ("overflow-x", "auto"),
                                                          ("max-width", "100%")]},
                               {"selector": "td, th", "props": [("white-space", "nowrap"), ("font-size", "0.9em")]}])
            .set_table_styles(prose, overwrite=False))

