"""Write notebooks/*.ipynb from the cell lists below (run after editing them: python scripts/build_notebooks.py).

Keeping the notebooks' source here, as plain Python strings, makes them reviewable in a diff and
keeps the shared opening (Colab badge, install cell, parameters) identical in every notebook.
"""

import hashlib
from pathlib import Path

import nbformat
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
# The one setting the Colab badges, the install cells and the book's repository button come from.
_REPOSITORY = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
REPOSITORY_URL = _REPOSITORY["url"].rstrip("/").removesuffix(".git")
BRANCH = _REPOSITORY.get("branch", "main")
REPOSITORY = REPOSITORY_URL.removeprefix("https://github.com/")  # owner/name, as Colab's github/ links take it

INSTALL = '''# Colab (or a Jupyter without MixQ): clone the repository, install the clone, and work in it, since the
# notebooks read its assets/ and results/. A no-op where MixQ is installed already.
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

REPOSITORY, BRANCH = "{url}", "{branch}"
if importlib.util.find_spec("mixq_core") is None:
    clone = Path("mixq").resolve()
    if not clone.is_dir():
        subprocess.run(["git", "clone", "--depth", "1", "--branch", BRANCH, REPOSITORY, str(clone)], check=True)
    # Not the book extra: jupyter-book's pins would move the packages Colab comes with.
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", str(clone), "matplotlib", "seaborn", "pandas",
                    "ipywidgets"], check=True)
    sys.path.insert(0, str(clone))  # this kernel started before the install
    os.chdir(clone)'''


def colab_badge(name: str) -> str:
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"(https://colab.research.google.com/github/{REPOSITORY}/blob/{BRANCH}/notebooks/{name}.ipynb)")


def install_cell():
    return new_code_cell(INSTALL.format(url=REPOSITORY_URL, branch=BRANCH), metadata={"tags": ["remove-cell"]})


def opening(name: str, title: str, intro: str, parameters: str) -> list:
    return [new_markdown_cell(f"# {title}\n\n{colab_badge(name)}\n\n{intro.strip()}"), install_cell(),
            new_code_cell(parameters.strip(), metadata={"tags": ["parameters"]})]


def md(text: str):
    return new_markdown_cell(text.strip())


def code(text: str, hide: bool = False):
    return new_code_cell(text.strip(), metadata={"tags": ["hide-input"]} if hide else {})


NOTEBOOKS = {}

NOTEBOOKS["01_prompts"] = opening("01_prompts", "Mixup-class prompts", """
Data-free quantization needs calibration images without touching the training data. A text-to-image
diffusion model can draw them from the class names alone. GenQ (ECCV 2024) asks for one class per
image ("a photo of a sneaker"); **mixup-class prompting** (arXiv 2507.21947) fuses several class names
in one prompt ("a photo of a sneaker and a bag"), so the images mix objects, look less like a single
mode of each class, and — the paper argues — make block reconstruction generalise better.

This notebook shows how the prompts are made: which classes go together, how often each class appears,
and what the generator draws for them.
""", '''
profile = "mini"   # papermill parameter: which profile's vocabulary and generator
k = 2              # classes per mixup prompt
n = 20             # prompts per strategy shown
seed = 0
''') + [
    code('''
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from mixq_core.profiles import load_profile
from mixq_core.prompts import PromptConfig, class_usage, load_vocabulary, make_prompts
from mixq_core.synthesis import class_similarity, load_pipeline
from mixq_core.widgets import explore_prompts, prompt_explorer, show_prompts

config = load_profile(profile)
vocabulary = load_vocabulary(config["vocabulary"])
pipe = load_pipeline(config["generator"])
'''),
    md('''
## Four prompt strategies

`single` and `genq` name one class; `mixup` names `k`; `mixup-embed` (our ablation) mixes the text
*embeddings* of `k` single-class prompts with Dirichlet weights instead of the words. Every record
carries its own seed, so the same index starts from the same noise in every strategy.
'''),
    code('''
strategies = ["single", "genq", "mixup", "mixup-embed"]
records = {s: make_prompts(PromptConfig(strategy=s, n=n, vocabulary=config["vocabulary"],
                                        k=k if s.startswith("mixup") else None, seed=seed,
                                        allow_unbalanced=True)) for s in strategies}
def shown_prompt(record):
    if not record.weights:
        return record.text
    return " + ".join(f"{w:.2f}·[{c}]" for w, c in zip(record.weights, record.components, strict=True))


pd.DataFrame({s: [shown_prompt(r) for r in rs[:8]] for s, rs in records.items()})
'''),
    md('''
## Balanced classes

Mixup prompts are drawn in rounds: in each round every class is the first (label) class once and the
partner in each further slot once, so no class is over-represented however many prompts a set holds.
'''),
    code('''
usage = class_usage(make_prompts(PromptConfig(strategy="mixup", n=10 * len(vocabulary), vocabulary=config["vocabulary"],
                                               k=k, seed=seed)), len(vocabulary))
slots = pd.DataFrame(usage, index=[f"slot {i + 1}" for i in range(len(usage))], columns=vocabulary.names)
ax = sns.heatmap(slots, annot=len(vocabulary) <= 12, fmt=".0f", cmap="Blues", cbar=False)
ax.set_title(f"How often each class fills each slot ({10 * len(vocabulary)} mixup prompts, k={k})");
''', hide=True),
    md('''
## Near and far partners

`partners="near"` pairs each class with those whose names the generator's text encoder finds most
similar, `"far"` with the least similar ones; the ablation notebook compares them with random partners.
'''),
    code('''
similarity = class_similarity(pipe, config["vocabulary"])
ax = sns.heatmap(pd.DataFrame(similarity, index=vocabulary.names, columns=vocabulary.names),
                 cmap="viridis", annot=len(vocabulary) <= 12, fmt=".2f")
ax.set_title("Cosine similarity of the generator's text embeddings of 'a photo of a {class}'");
''', hide=True),
    md('''
## What the generator draws

Single-class and two-class prompts for the same classes and seeds, from the profile's generator.
'''),
    code('''
shown = vocabulary.names[:5]
for kk in (1, k):
    recs, images = explore_prompts(config["vocabulary"], shown, kk, seed=seed, pipe=pipe, steps=config["steps"],
                                   guidance=config["guidance"], resolution=config["resolution"])
    show_prompts(recs, images)
    plt.show()
'''),
    md('''
## Explore

Pick classes, `k` and a template, then press the button (in a live notebook; the rendered book shows
the panel only).
'''),
    code('''
prompt_explorer(config["vocabulary"], pipe, steps=config["steps"], guidance=config["guidance"],
                resolution=config["resolution"]);
'''),
]

NOTEBOOKS["02_synthesis"] = opening("02_synthesis", "Calibration sets per strategy", """
Each data source gives the quantizer a calibration set of the same size. This notebook makes (or
reuses) the synthetic sets the main grid uses, shows them side by side, and measures how varied each
set looks to the full-precision model — the property mixup-class prompts are meant to improve.
""", '''
profile = "mini"   # papermill parameter
model = None       # the model whose eyes judge the sets (None: the profile's first)
seed = 0
''') + [
    code('''
import matplotlib.pyplot as plt
import pandas as pd

from mixq_core.analysis import diversity_metrics, score_synthetic
from mixq_core.experiment import ExperimentConfig, calibration_data
from mixq_core.models import load_model
from mixq_core.profiles import load_profile
from mixq_core.report import SOURCE_LABELS, set_gallery
from mixq_core.synthesis import load_pipeline

config = load_profile(profile)
grid = config["grid_cnn"]
model = model or grid["models"][0]
fp_model = load_model(config, model)
pipe = load_pipeline(config["generator"])
sources = ["real", "noise", "single", "genq", "mixup", "mixup-embed"]
sets = {s: calibration_data(ExperimentConfig(profile=profile, model=model, data=s, n_calib=grid["n_calib"],
                                             seed=seed), fp_model, pipe=pipe) for s in sources}
'''),
    md('''
## The generator

The `mini` generator is a Stable Diffusion pipeline trained here (`mixq train-mini-generator`). Its
quality was measured by `benchmarks/generator_quality.py` with the shipped resnet18 as judge, and
recorded in `assets/manifest.json` beside the training command: the shipped generator (trained with
two-item collages for two-class captions) and its ablation trained on single-class captions only.
`real collage` columns score real test items pasted the way training collages are made: what this judge
gives a faithful two-item picture. *Item by item* columns judge each half of a picture on its own
(the bright pixels' bounding box, rescaled and centred as a Fashion-MNIST item), instead of asking a
judge trained on one centred item to read two small ones at once.
'''),
    code('''
from mixq_core.models import read_assets_manifest

quality = read_assets_manifest().get("generator_quality", {})
pd.DataFrame([{"generator": label, "solver steps": run["steps"], "guidance": run["guidance"],
               "single-class: judge agrees (%)": run["single_top1"],
               "Fréchet distance (generated vs real test)": run["fd_generated"],
               "Fréchet distance floor (real train vs test)": run["fd_real_floor"],
               "two-class: both in top-2 (%)": run["pair_both_in_top2"],
               "two-class: one in top-2 (%)": run["pair_any_in_top2"],
               "real collage: both in top-2 (%)": run.get("real_collage_both_in_top2"),
               "two-class: both, judged item by item (%)": run.get("pair_both_by_items"),
               "real collage: both, item by item (%)": run.get("real_collage_both_by_items"),
               "images/s (CPU)": run["images_per_second"]}
              for label, entry in quality.items() for run in entry["runs"]]).set_index(["generator", "solver steps"])
'''),
    md('''
How far can a judge trained on one centred item per image read two? `benchmarks/generator_quality.py
--ceiling` asks it about real test items put into one picture in several ways: side by side as the
training collages, overlapping at full size, and blended pixel by pixel. A generator's two-class image
is at best one of these, so the best design bounds the judge's *both in top-2* score for any generator.
'''),
    code('''
ceiling = read_assets_manifest().get("judge_pair_ceiling", {})
pd.DataFrame([{"judge": judge, "real two-item pictures": design, "pictures": entry["pictures_per_design"],
               "both in top-2 (%)": scores["both_in_top2"], "one in top-2 (%)": scores["any_in_top2"]}
              for judge, entry in ceiling.items()
              for design, scores in entry["designs"].items()]).set_index(["judge", "real two-item pictures"])
'''),
    md('''
Galleries written by the same benchmark (guidance 3; 25 solver steps for the shipped generator, 15 for
the ablation): eight single-class images per
class, then two-class prompts — from the shipped generator, and from the ablation trained without
collages.

![Single-class images of the shipped mini generator](../book/figures/mini_generator_single.png)

![Two-class images of the shipped mini generator](../book/figures/mini_generator_pairs.png)

![Two-class images of the single-caption ablation](../book/figures/mini_generator_ablation_pairs.png)
'''),
    md("## The sets side by side\n\nThe first images of each synthetic set, titled by their prompts."),
    code('''
for source in ["single", "genq", "mixup", "mixup-embed"]:
    set_gallery(sets[source][1]["set_folder"], n=16, title=SOURCE_LABELS[source])
    plt.show()
''', hide=True),
    md('''
## Diversity as the model sees it

Mean prediction entropy (ambiguous images score high), how many classes are some image's top-1, and
the spread of the penultimate features (trace of their covariance, mean pairwise distance), for real
training images, noise and each synthetic set.
'''),
    code('''
rows = []
for source, (dataset, made) in sets.items():
    metrics = diversity_metrics(fp_model, dataset)
    row = {"data": SOURCE_LABELS[source], **metrics, "synthesis (s)": made["synthesis_seconds"]}
    if made.get("set_folder"):
        agreement = score_synthetic(fp_model, made["set_folder"])
        row.update({"judge top-1 = prompted (%)": agreement["top1"],
                    "all prompted in top-2 (%)": agreement["all_in_topk"]})
    rows.append(row)
diversity = pd.DataFrame(rows).set_index("data")
diversity.round(3)
'''),
    code('''
ax = diversity["feature_trace_cov"].plot.barh(color="tab:blue")
ax.set_xlabel(f"trace of the covariance of {model}'s penultimate features")
ax.set_title(f"Feature spread of {len(sets['real'][0])}-image calibration sets");
''', hide=True),
]

PTQ_INTRO = """
Top-1 on the real Fashion-MNIST test images after post-training quantization, per model, bit setting
and calibration source, with real training images as the upper bound and Gaussian noise as the lower
bound. Method: QDrop block reconstruction (AdaRound rounding + learned activation steps + random drop),
first and last layer at 8 bits, the other weights and all activations at the stated bits.

Two tables: first the profile this notebook ran with (recomputed now), then the published grid
(`tables_from` in the profile: three seeds, mean ± std), read from the committed result records.
"""

PTQ_CELLS = [
    code('''
import pandas as pd
from IPython.display import Markdown, display

from mixq_core.experiment import grid_configs, run_grid
from mixq_core.profiles import load_profile
from mixq_core.report import (
    compare_sources,
    grid_records,
    pivot_sources,
    plot_differences,
    plot_sources,
    provenance_line,
    records_frame,
    summary_table,
)

config = load_profile(profile)
records = run_grid(grid_configs(profile, section))
'''),
    md("## This run"),
    code('''
frame = records_frame(records)
display(Markdown(f"Profile **{profile}**: {frame['n_calib'].iloc[0]} calibration images, "
                 f"{frame['iters'].iloc[0]} iterations per block, {frame['n_eval'].iloc[0]} test images, "
                 f"seeds {sorted(int(s) for s in frame['seed'].unique())}. {provenance_line(records)}."))
pivot_sources(summary_table(frame))
'''),
    md("## The published grid"),
    code('''
published_profile = config.get("tables_from", profile)
published = grid_records(published_profile, [section])
if published:
    table = summary_table(records_frame(published))
    display(Markdown(f"Profile **{published_profile}**. {provenance_line(published)}."))
    display(pivot_sources(table))
else:
    table = summary_table(frame)
    display(Markdown(f"No records of profile **{published_profile}** yet; the comparisons below use this run."))
'''),
    md('''
## Does mixing classes help?

Difference in mean top-1 between mixup-class prompts and each single-class baseline. A difference is
called *beyond seed spread* when it exceeds twice its standard error over seeds.
'''),
    code('''
pd.concat([compare_sources(table, "mixup", "single").set_index(["model", "bits"]),
           compare_sources(table, "mixup", "genq").set_index(["model", "bits"])], axis=1)
'''),
    code('''
figure = plot_sources(table)
figure.suptitle("Top-1 per calibration source, mean ± std over seeds (dashed: full precision)");
''', hide=True),
    md("Mixup-class prompts minus each single-class baseline, with ±2 standard errors over seeds: a bar that "
       "crosses zero is within the seed spread."),
    code('''
figure = plot_differences({baseline: compare_sources(table, "mixup", baseline) for baseline in ("single", "genq")})
''', hide=True),
]

NOTEBOOKS["03_ptq_cnn"] = opening("03_ptq_cnn", "Quantizing CNNs", PTQ_INTRO, '''
profile = "mini"        # papermill parameter
section = "grid_cnn"    # the profile's grid of CNN experiments
''') + PTQ_CELLS

NOTEBOOKS["04_ptq_vit"] = opening("04_ptq_vit", "Quantizing a vision transformer", PTQ_INTRO + """
The transformer's attention matmuls (Q·Kᵀ and softmax·V) are quantized too; its blocks are the units of
reconstruction.
""", '''
profile = "mini"        # papermill parameter
section = "grid_vit"    # the profile's grid of ViT experiments
''') + PTQ_CELLS

TRACE_SETUP = code('''
import seaborn as sns

from mixq_core.experiment import grid_configs, run_grid
from mixq_core.profiles import load_profile
from mixq_core.report import SOURCE_LABELS, provenance_line, unit_summary

config = load_profile(profile)
records = run_grid(grid_configs(profile, section))  # reuses the records 03/04 wrote
records = [r for r in records if r["metrics"]["config"]["model"] == (model or config[section]["models"][0])]
print(provenance_line(records))
''')

NOTEBOOKS["05_gradient_norm"] = opening("05_gradient_norm", "Gradient norms during reconstruction", """
The paper's optimisation argument: with mixup-class calibration images the gradients of the
reconstruction loss stay smaller and steadier, so block reconstruction converges more stably. Here we
plot the L2 norm of the gradient of the reconstruction loss with respect to the rounding parameters
(AdaRound's α), per block and overall, for each data source (averaged over windows of 25 steps).
""", '''
profile = "mini"        # papermill parameter
section = "grid_cnn"
model = None            # None: the grid's first model
''') + [
    TRACE_SETUP,
    code('''
from mixq_core.report import unit_traces

traces = unit_traces(records, "grad_norm_rounding")
traces["source"] = traces["data"].map(SOURCE_LABELS)
overall = traces.groupby(["bits", "source", "seed", "step"], as_index=False)["grad_norm_rounding"].mean()
grid = sns.relplot(data=overall, x="step", y="grad_norm_rounding", hue="source", col="bits", kind="line",
                   height=3.2, aspect=1.4, facet_kws={"sharey": False})
grid.set(yscale="log")
grid.set_axis_labels("step within block", "‖∇α rec. loss‖ (mean over blocks)");
''', hide=True),
    md("## Per block"),
    code('''
grid = sns.relplot(data=traces[traces["bits"] == traces["bits"].iloc[-1]], x="step", y="grad_norm_rounding",
                   hue="source", col="unit", col_wrap=4, kind="line", height=2.2, aspect=1.3,
                   facet_kws={"sharey": False})
grid.set(yscale="log")
grid.set_titles("{col_name}");
''', hide=True),
    code('''
summary = unit_summary(records)
summary.groupby(["bits", "data"])[["grad_norm_mean"]].mean().unstack("bits").round(4)
'''),
]

NOTEBOOKS["06_generalization"] = opening("06_generalization", "Generalization error per block", """
The paper's second argument: calibrating on synthetic data, a block fits the calibration images but
must behave on real ones. We measure, for every block, its reconstruction loss on 256 held-out *real*
images minus the same loss on as many calibration images (the *generalization error*), along the
optimisation and at its end, and set the quantized accuracy against it.
""", '''
profile = "mini"        # papermill parameter
section = "grid_cnn"
model = None            # None: the grid's first model
''') + [
    TRACE_SETUP,
    code('''
summary = unit_summary(records)
summary["source"] = summary["data"].map(SOURCE_LABELS)
grid = sns.catplot(data=summary, x="unit_index", y="generalization_error", hue="source", col="bits", kind="point",
                   height=3.2, aspect=1.6, sharey=False, errorbar="sd")
grid.set_axis_labels("block (forward order)", "held-out real loss − calibration loss");
''', hide=True),
    code('''
from mixq_core.report import run_probes

per_run = run_probes(records)
per_run["source"] = per_run["data"].map(SOURCE_LABELS)
grid = sns.relplot(data=per_run, x="generalization_error", y="top1", hue="source", col="bits", height=3.2,
                   aspect=1.3, facet_kws={"sharex": False, "sharey": False}, s=60)
grid.set_axis_labels("mean generalization error over blocks", "quantized top-1 (%)");
''', hide=True),
    code('''
per_run.groupby(["bits", "source"])[["generalization_error", "top1"]].mean().round(4)
'''),
]

NOTEBOOKS["07_ablations"] = opening("07_ablations", "Ablations", """
One factor at a time around one cell of the grid (the profile's `ablations` section): classes per
prompt `k` (1 = single-class), calibration-set size, guidance scale, near vs far vs random partners,
and prompt-level (`mixup`) vs embedding-level (`mixup-embed`) mixing.
""", '''
profile = "mini"   # papermill parameter
''') + [
    code('''
import matplotlib.pyplot as plt
import seaborn as sns
from IPython.display import Markdown, display

from mixq_core.experiment import ablation_configs, run_grid
from mixq_core.profiles import load_profile
from mixq_core.report import existing_records, provenance_line, records_frame

config = load_profile(profile)
published_profile = config.get("tables_from", profile)
TABLE_COLUMNS = {"k": "k", "n_calib": ["n_calib", "data"], "guidance": "guidance", "partners": "partners",
                 "mixing": "data"}


def show_ablations(name, records):
    """Describe, plot and tabulate one profile's ablation records ({factor: records})."""
    spec = load_profile(name)["ablations"]
    unique = {r["config_hash"]: r for rs in records.values() for r in rs}  # factors share their centre cell
    display(Markdown(f"Profile **{name}**: {spec['model']} at W{spec['bits'][0]}A{spec['bits'][1]}, "
                     f"{spec['iters']} iterations per block, seeds {spec['seeds']}. "
                     f"{provenance_line(list(unique.values()))}."))
    results = {factor: records_frame(rs) for factor, rs in records.items()}
    fig, axes = plt.subplots(1, 5, figsize=(18, 3.2))
    for ax, (factor, x, title) in zip(axes, [("k", "k", "classes per prompt (k=1: single)"),
                                             ("n_calib", "n_calib", "calibration images"),
                                             ("guidance", "guidance", "guidance scale (mixup)"),
                                             ("partners", "partners", "mixup partners"),
                                             ("mixing", "data", "prompt vs embedding mixing")], strict=True):
        sns.pointplot(data=results[factor], x=x, y="top1", hue="data" if factor == "n_calib" else None,
                      errorbar="sd", ax=ax)
        ax.set_title(title)
        ax.set_ylabel("top-1 (%)")
    fig.tight_layout()
    plt.show()
    for factor, frame in results.items():
        display(Markdown(f"**{factor}**"))
        display(frame.groupby(TABLE_COLUMNS[factor])["top1"].agg(["mean", "std", "count"]).round(2))
'''),
    md("## This run"),
    code('''
show_ablations(profile, {factor: run_grid(configs) for factor, configs in ablation_configs(profile).items()})
'''),
    md("## The published ablations"),
    code('''
published = {factor: existing_records(configs) for factor, configs in ablation_configs(published_profile).items()}
if published_profile == profile:
    display(Markdown(f"This run is the published profile (**{profile}**)."))
elif all(published.values()):
    show_ablations(published_profile, published)
else:
    display(Markdown(f"No **{published_profile}** ablation records yet; see this run above."))
'''),
]

NOTEBOOKS["09_results"] = opening("09_results", "Results: the mini track beside ImageNet", """
The mini track's published grid (three seeds) next to the public ImageNet numbers of the same methods
(`mixq_core/reference/imagenet_ptq_reference.csv`, each row with its source). The two are not the same
experiment — 32×32 Fashion-MNIST and models trained here against ImageNet and pretrained models — so
compare *drops from full precision* and *orderings of data sources*, not absolute accuracies.

These tables come from the short schedule of the published grid (256 images, 200 steps per block,
reconstruction engine 1). Chapter [11](11_long_regime) asks the same question in the paper's regime
(1024 images, thousands of steps per block) and compares the two.
""", '''
profile = "mini"   # papermill parameter: its tables_from profile is shown
''') + [
    code('''
import pandas as pd
from IPython.display import Markdown, display

from mixq_core.profiles import load_profile
from mixq_core.report import (
    compare_sources,
    grid_records,
    imagenet_reference,
    pivot_sources,
    provenance_line,
    records_frame,
    summary_table,
)

published_profile = load_profile(profile).get("tables_from", profile)
records = grid_records(published_profile) or grid_records(profile)
shown_profile = published_profile if grid_records(published_profile) else profile
frame = records_frame(records)
table = summary_table(frame)
display(Markdown(f"Profile **{shown_profile}**: {provenance_line(records)}."))
'''),
    md("## Mini track: top-1 (%) per data source, mean ± std over seeds"),
    code("pivot_sources(table)"),
    md("## Mixup-class prompts against the single-class baselines"),
    code('''
pd.concat([compare_sources(table, "mixup", "single").set_index(["model", "bits"]),
           compare_sources(table, "mixup", "genq").set_index(["model", "bits"])], axis=1)
'''),
    md("## Drop from full precision: mini (real calibration data) beside the ImageNet references"),
    code('''
reference = imagenet_reference()
reference = reference[reference["w_bits"] < 32]
mini = table[table["data"] == "real"].assign(source=f"MixQ mini ({shown_profile})", method="QDrop",
                                              calibration=lambda d: f"real {frame['n_calib'].iloc[0]}")
mini = mini.assign(w_bits=mini["bits"].str[1].astype(int), a_bits=mini["bits"].str[3].astype(int),
                   top1=mini["top1_mean"].round(2), fp_top1=mini["fp_top1"].round(2), drop=mini["drop"].round(2))
columns = ["source", "calibration", "method", "model", "w_bits", "a_bits", "fp_top1", "top1", "drop"]
pd.concat([reference[columns], mini[columns]], ignore_index=True)
'''),
]


NOTEBOOKS["11_long_regime"] = opening("11_long_regime", "The paper's regime: reconstruction that runs", """
The earlier chapters calibrate on 256 images with 200 reconstruction steps per block. In that regime
AdaRound hardly moves: when its rounding is hardened almost every rounding variable is still soft and
about 1 % of the weights end up rounded differently from round-to-nearest, so those tables mostly compare
how well each calibration set sets the *activation ranges*. The paper works in QDrop's regime: 1024
images and 20 000 steps per block, where the rounding is really learned and the generalization from
synthetic to real images can matter.

This chapter reruns the question there, in miniature: 1024 calibration images and 5000 steps per block for
resnet18 (one convergence cell at the full 20 000), 2000 for mobilenetv2_100 and deit_mini, three seeds,
the probes on, evaluated on all 10 000 test images. It also adds the paper's kind of baseline against
prompt-level mixing: the single-class set with image-level **Mixup** or **CutMix** applied to its images
(`timm.data.Mixup`, α = 0.8 and 1.0 as in the timm/DeiT recipe).

**One engine per table.** Everything here comes from reconstruction engine 2, which follows the official
QDrop code (the activation function joins the layer before it, activation ranges are found on the float
model, LSQ's gradient scale, and a rounding-loss weight per model: 0.01 for ResNet, 0.1 for
MobileNetV2). The short schedule was rerun with engine 2 (profile `mini-short`) so that short and long are
compared on one engine; the earlier chapters' tables (profile `mini-full`) come from engine 1.
""", """
profile = "mini"        # papermill parameter: its `regimes` entry names the short and long profiles
results_dir = None      # None: $MIXQ_RESULTS or results/
""") + [
    code("""
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display

from mixq_core.experiment import grid_section_configs, run_grid
from mixq_core.profiles import load_profile
from mixq_core.report import (
    SOURCE_LABELS,
    compare_sources,
    grid_records,
    missing_experiments,
    pivot_sources,
    plot_differences,
    provenance_line,
    regime_comparison,
    regime_conclusion,
    regimes_frame,
    rounding_summary,
    source_palette,
    summary_table,
    unit_traces,
)

regimes = load_profile(profile)["regimes"]
profiles = {"short": regimes["short"], "long": regimes["long"]}
if regimes.get("run"):  # the tiny test profiles run their grids here; mini's come from committed records
    for name in profiles.values():
        run_grid(grid_section_configs(name))
records = {regime: grid_records(name, results_dir=results_dir) for regime, name in profiles.items()}
frame = regimes_frame(records)
frame["source"] = frame["data"].map(SOURCE_LABELS)
palette = source_palette()
tables = {regime: summary_table(frame[frame["regime"] == regime]) for regime in profiles}
""", hide=True),
    md("## What has run"),
    code("""
lines = []
for regime, name in profiles.items():
    shown = frame[frame["regime"] == regime]
    missing = missing_experiments(name, results_dir=results_dir)
    schedule = ", ".join(f"{n} images × {i} steps" for n, i in
                         shown[["n_calib", "iters"]].drop_duplicates().itertuples(index=False)) or "none yet"
    lines.append(f"- **{regime}** (profile `{name}`): {len(records[regime])} runs ({schedule}); "
                 f"{len(missing)} of its experiments have no record yet. {provenance_line(records[regime])}.")
display(Markdown("\\n".join(lines)))
missing = missing_experiments(profiles["long"], results_dir=results_dir)
if missing:
    display(Markdown("Not run yet in the long schedule: " + "; ".join(missing[:40])
                     + (f"; and {len(missing) - 40} more." if len(missing) > 40 else ".")))
""", hide=True),
    md("""
## The long schedule

Top-1 on the real test set, mean ± std over seeds. A difference between two sources is *beyond seed
spread* when it exceeds twice its standard error.
"""),
    code("""
pivot_sources(tables["long"])
"""),
    code("""
versus = {other: compare_sources(tables["long"], "mixup", other)
          for other in ("single", "genq", "single-mixup", "single-cutmix")}
found = [table.set_index(["model", "bits"]) for table in versus.values() if not table.empty]
pd.concat(found, axis=1) if found else "No cell of the long schedule has mixup and a baseline yet."
"""),
    md("Mixup-class prompts minus each baseline in the long schedule, ±2 standard errors over seeds."),
    code("""
figure = plot_differences(versus)
""", hide=True),
    md("""
## Short against long

The same sources in both schedules, side by side: does their ranking change when reconstruction really
runs? Points are means over seeds, bars one standard deviation.
"""),
    code("""
shown = frame[frame["data"].isin(set(tables["short"]["data"]) & set(tables["long"]["data"]))]
if not shown.empty:
    order = [label for label in palette if label in set(shown["source"])]
    grid = sns.catplot(data=shown, x="source", y="top1", hue="regime", col="bits", row="model", kind="point",
                       order=order, errorbar="sd", dodge=0.3, linestyle="none", height=3.2, aspect=1.5,
                       sharey=False)
    grid.set_axis_labels("", "top-1 (%)")
    grid.set_titles("{row_name} {col_name}")
    for axis in grid.axes.flat:
        axis.tick_params(axis="x", rotation=35)
""", hide=True),
    code("""
comparison = regime_comparison(tables["short"], tables["long"])
comparison
"""),
    md("""
## How much reconstruction happened

Before AdaRound's rounding is hardened, a rounding variable that is still *soft* (0 < h(α) < 1) has
not been decided by the optimisation; hardening rounds it by its sign. The second figure is the share of
weights that end up rounded differently from round-to-nearest. Both are means over the reconstructed
units of a run.
"""),
    code("""
rounding = rounding_summary(records["short"] + records["long"])
if not rounding.empty:
    rounding["source"] = rounding["data"].map(SOURCE_LABELS)
    table = rounding.groupby(["model", "bits", "iters"])[["soft_share", "flipped_share"]].mean() * 100
    display(table.rename(columns={"soft_share": "still soft (%)", "flipped_share": "rounded away from nearest (%)"})
            .round(2))
""", hide=True),
    code("""
units = [{"regime": regime, "model": r["metrics"]["config"]["model"],
          "bits": f"W{r['metrics']['config']['w_bits']}A{r['metrics']['config']['a_bits']}", "unit": index,
          "still soft (%)": 100 * unit["soft_share"], "rounded away from nearest (%)": 100 * unit["flipped_share"]}
         for regime, rs in records.items() for r in rs for index, unit in enumerate(r["metrics"]["units"])
         if unit.get("soft_share") is not None]
if units:
    per_unit = pd.DataFrame(units).melt(id_vars=["regime", "model", "bits", "unit"], var_name="share",
                                        value_name="percent")
    grid = sns.relplot(data=per_unit, x="unit", y="percent", hue="regime", style="bits", col="share",
                       row="model", kind="line", errorbar="sd", height=3, aspect=1.5,
                       facet_kws={"sharey": False})
    grid.set_axis_labels("unit (forward order)", "%")
    grid.set_titles("{row_name}: {col_name}")
""", hide=True),
    md("""
## The paper's two analyses, along the reconstruction

The paper argues that mixup-class images give (1) smaller, steadier gradients of the reconstruction loss
and (2) a smaller generalization error: the loss of a block on held-out *real* images minus its loss on
the calibration images. Here both are traced over the steps of the long schedule, averaged over units
and seeds (the gradient norm over windows of 25 steps, the generalization error every tenth of the
schedule).
"""),
    code("""
for field, label, log in (("grad_norm_rounding", "‖∇α rec. loss‖ (mean over units)", True),
                          ("generalization_error", "held-out real − calibration loss (mean over units)", False)):
    traces = unit_traces(records["long"], field)
    if traces.empty:
        continue
    traces["source"] = traces["data"].map(SOURCE_LABELS)
    curves = traces.groupby(["model", "bits", "source", "seed", "step"], as_index=False)[field].mean()
    grid = sns.relplot(data=curves, x="step", y=field, hue="source", palette=palette, col="bits", row="model",
                       kind="line", errorbar="sd", height=3, aspect=1.5, facet_kws={"sharey": False})
    grid.set_axis_labels("step within a unit", label)
    grid.set_titles("{row_name} {col_name}")
    if log:
        grid.set(yscale="log")
""", hide=True),
    md("""
## Prompt-level against image-level mixing

Mixing classes in the prompt (one generated picture shows two items) against mixing single-class
pictures after generation (Mixup blends two images, CutMix pastes a box of one into another), with the
same number of images.
"""),
    code("""
rows = [compare_sources(tables[regime], "mixup", other)
        .rename(columns={f"mixup − {other}": "mixup − other"}).assign(regime=regime, other=SOURCE_LABELS[other])
        for regime in profiles for other in ("single-mixup", "single-cutmix")]
rows = [row for row in rows if not row.empty]
pd.concat(rows).set_index(["regime", "model", "bits", "other"]) if rows else "No cell has both sources yet."
"""),
    md("## Conclusion"),
    code("""
display(Markdown(regime_conclusion(tables["long"], versus, comparison, rounding_summary(records["long"]))))
""", hide=True),
]

NOTEBOOKS["10_worlds"] = opening("10_worlds", "When does mixing classes help?", """
The paper credits mixup-class prompts with two things single-class prompts lack. **Polysemy:** a class
name can mean two things ("kite": a bird or a toy; "crane": a bird or a machine), so a single-class prompt
may draw the wrong concept, while a second name in the prompt gives context. **The generalization gap:**
generated images are not drawn from the data the model was trained on, and mixing classes makes the
calibration set more varied, so block reconstruction fits it less tightly and generalises better to
real images.

In the plain miniature neither cause exists: the generator learned the classifiers' own training images
under the classifiers' own class names. So we built worlds where the causes exist by construction, each
with a generator trained by the same command (`mixq train-mini-generator --world ...`):

| world | generator | what differs from plain |
|---|---|---|
| plain | `mini` | nothing |
| gap | `mini-gap` | trained on restyled items (rescaled, shifted, gamma and contrast changed, grey \
backgrounds, stripes, a quarter inverted): recognisable, but not Fashion-MNIST's images |
| polysemy | `mini-polysemy` | the names *sandal*, *coat* and *trouser* also caption bags, sneakers and \
ankle boots (35 % of those items' captions); the prompts use the class names as usual |
| gap+polysemy | `mini-gap-polysemy` | both |

The polysemy worlds reuse the VAE of the world with the same pictures, so their generators differ only in
the captions the UNet learned. Each world runs the published grid's generated sources (single-class, GenQ,
mixup) with the same models, bits, set size, iterations and seeds; real and noise calibration never touch
the generator, so every world shows the plain world's records for them.
""", '''
profile = "mini"   # papermill parameter: its `worlds` section names the profile of each world
''') + [
    code('''
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display

from mixq_core.experiment import grid_section_configs, run_grid
from mixq_core.profiles import load_profile
from mixq_core.report import (
    SOURCE_LABELS,
    collapsed_settings,
    compare_sources,
    pivot_sources,
    provenance_line,
    run_probes,
    summary_table,
    world_conclusion,
    world_generator_quality,
    world_profiles,
    world_records,
    world_summary,
    worlds_frame,
)

worlds = world_profiles(profile)
if load_profile(profile)["worlds"]["run"]:  # the smoke profile runs its tiny world grids; mini shows the published ones
    for world_profile in worlds.values():
        run_grid(grid_section_configs(world_profile))
records = world_records(worlds)
for world, found in records.items():
    display(Markdown(f"**{world}** ({worlds[world]}): {provenance_line(found)}."))
frame = worlds_frame(records)
frame["setting"] = frame["model"] + " " + frame["bits"]
# The cells some generated world has run: the plots compare worlds there (the plain world has every cell).
compared = list(dict.fromkeys(frame.loc[frame["world"] != "plain", "setting"]))
'''),
    md("""
## What each world's generator draws

One row per world, the same prompts and starting noise in every row. The judge below is the shipped
full-precision resnet18: how often it agrees with the prompted class on 100 single-class images per class,
the Fréchet distance of those images to real test images in its penultimate features, and how often a
prompt for a polysemous name is drawn as the other concept (recorded in `assets/manifest.json` by
`benchmarks/generator_quality.py --polysemy`; the mini grids sample with 15 solver steps at guidance 3).
The judge was trained on plain Fashion-MNIST, so in the gap worlds it misreads many restyled items (often
as bags): there its agreement and its "drawn as" shares measure the gap itself, and only the polysemy
world's shares isolate polysemy.
"""),
    code('''
from mixq_core.generator import gallery
from mixq_core.prompts import FASHION_MNIST_PROMPT_NAMES, PromptConfig, make_prompts
from mixq_core.synthesis import generate_images, load_pipeline

shown = {"single": ["sandal", "coat", "trouser", "bag", "sneaker", "ankle boot"],
         "mixup": [("sandal", "bag"), ("coat", "dress")]}
prompts = [r for name in shown["single"] for r in make_prompts(
    PromptConfig(strategy="single", n=1, vocabulary="fashion-mnist", classes=(name,)))]
prompts += [make_prompts(PromptConfig(strategy="mixup", n=1, k=2, vocabulary="fashion-mnist", classes=pair,
                                      allow_unbalanced=True))[0] for pair in shown["mixup"]]
cells = []
for world, world_profile in worlds.items():
    settings = load_profile(world_profile)
    pipe = load_pipeline(settings["generator"])
    images = generate_images(pipe, prompts, settings["steps"], settings["guidance"], settings["resolution"],
                             pad_to=len(prompts))
    cells += [((world, record), image) for record, image in zip(prompts, images, strict=True)]
figure = gallery(cells, columns=len(prompts), title_of=lambda key: f"{key[0]}: " + " + ".join(
    FASHION_MNIST_PROMPT_NAMES[c] for c in key[1].classes))
''', hide=True),
    code('''
world_generator_quality(list(worlds)).set_index(["world", "solver steps", "guidance"]).T
'''),
    md("## Top-1 (%) per world and data source, mean ± std over seeds"),
    code('''
table = summary_table(frame, by=("world", "model", "bits", "data"))
pivot_sources(table, index=("world", "model", "bits"))
'''),
    md("""
## Drop from real-data calibration

How far each generated source falls below calibration on as many real training images, world by world.
Error bars: the standard error of the difference over seeds.
"""),
    code('''
GENERATED = {"single": -0.2, "genq": 0.0, "mixup": 0.2}  # generated sources and their offsets in the plot
drops = pd.concat([compare_sources(table, "real", source, by=("world", "model", "bits"))
                   .rename(columns={f"real − {source}": "drop from real"}).assign(data=source)
                   for source in GENERATED], ignore_index=True)
drops["setting"] = drops["model"] + " " + drops["bits"]
fig, axes = plt.subplots(1, len(compared), figsize=(4.2 * len(compared), 3.4), squeeze=False)
position = {world: i for i, world in enumerate(worlds)}
for ax, setting in zip(axes[0], compared, strict=True):
    part = drops[drops["setting"] == setting]
    for (data, offset), colour in zip(GENERATED.items(), sns.color_palette(n_colors=len(GENERATED)), strict=True):
        rows = part[part["data"] == data]  # each source at its own offset and colour, in every panel
        ax.errorbar(rows["world"].map(position) + offset, rows["drop from real"], yerr=rows["standard error"],
                    fmt="o", capsize=3, color=colour, label=SOURCE_LABELS[data])
    ax.set_xticks(range(len(worlds)), list(worlds), rotation=20)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_title(setting)
    ax.set_ylabel("real top-1 − source top-1 (pt)")
axes[0][-1].legend(fontsize=8)
fig.tight_layout()
''', hide=True),
    md("""
## Mixup-class against single-class prompts, world by world

The paper's claim, cell by cell: mixup minus single-class and mixup minus GenQ, with the standard error
over seeds and whether the difference exceeds twice that (the screening rule of every table here).
"""),
    code('''
versus_single = compare_sources(table, "mixup", "single", by=("world", "model", "bits"))
versus_genq = compare_sources(table, "mixup", "genq", by=("world", "model", "bits"))
pd.concat([versus_single.set_index(["world", "model", "bits"]),
           versus_genq.set_index(["world", "model", "bits"])], axis=1)
'''),
    md("## Gradient norm and generalization error per world"),
    code('''
probes = pd.concat([run_probes(found).assign(world=world) for world, found in records.items() if found],
                   ignore_index=True)
probes["world"] = pd.Categorical(probes["world"], categories=list(worlds), ordered=True)
probes["source"] = probes["data"].map(SOURCE_LABELS)
probes["setting"] = probes["model"] + " " + probes["bits"]
shown = probes[probes["setting"].isin(compared)]
probe_names = {"grad_norm": "‖∇α rec. loss‖", "generalization_error": "generalization error"}
grid = sns.catplot(data=shown.rename(columns=probe_names).melt(
                       id_vars=["world", "source", "setting", "seed"], value_vars=list(probe_names.values()),
                       var_name="probe"),
                   x="world", y="value", hue="source", row="probe", col="setting", kind="point", errorbar="sd",
                   dodge=0.4, height=2.8, aspect=1.5, sharey=False, linestyle="none")
grid.set_titles("{col_name}")
for (probe, _), ax in grid.axes_dict.items():
    ax.set_ylabel(f"{probe} (block mean)")
''', hide=True),
    code('''
probes.groupby(["world", "model", "bits", "data"], observed=True)[["grad_norm", "generalization_error", "top1"]
                                                                 ].agg(["mean", "std"]).round(4)
'''),
    md("""
## What the worlds say

Only the cells (model × bits) that every world has run are compared here, so each world is judged on
the same cells, and cells where calibration on real images itself keeps less than half of the
full-precision top-1 are left out: there the quantizer fails whatever the data, and the sources differ by noise.
"""),
    code('''
versus_single["setting"] = versus_single["model"] + " " + versus_single["bits"]
# Cells where real-data calibration itself keeps less than half of the FP top-1 compare noise, not data.
collapsed = collapsed_settings(table)
common = [s for s in compared if s not in collapsed
          and versus_single.loc[versus_single["setting"] == s, "world"].nunique() == len(worlds)]
display(Markdown(f"Cells compared: {', '.join(common) or 'none yet'}"
                 + (f" (left out, because real-data calibration itself collapses there: {', '.join(collapsed)})"
                    if collapsed else "")
                 + ". Per world: how many cells, the mean of "
                 "mixup − single, the cells where mixup-class calibration beats single-class calibration by more "
                 "than the seed spread, loses by more, or neither, and the mean drop of each generated source "
                 "from real-data calibration (pt)."))
summary = world_summary(versus_single[versus_single["setting"].isin(common)], drops[drops["setting"].isin(common)])
summary.round(2)
'''),
    code('''
display(Markdown(world_conclusion(summary)))
'''),
]

NOTEBOOKS["08_imagenet_colab"] = opening("08_imagenet_colab", "The ImageNet track on a GPU", """
The paper's own setting: **Stable Diffusion v1.5** draws the calibration images from ImageNet class
names, a **timm pretrained** model is quantized with QDrop (first and last layer at 8 bits), and the
result is scored on the ImageNet validation set and set beside the published numbers. It is the same
code as the mini track, on an ImageNet profile.

By default the notebook runs the `imagenet-colab` profile, sized for a free Colab GPU (a T4): resnet18 at
W2A4 from mixup-class prompts, with 250 generated images (one per prompt, drawn from every 4th ImageNet
class), 5000 QDrop steps per block and top-1 on a fixed subset of 10 000 val images, in about 36 minutes.
Set `imagenet_profile = "imagenet"` for the paper's full setting: 1024 images, 20 000 steps per block and
all 50 000 val images, about 2.3 hours on a T4.

In Colab: choose a GPU runtime, put the ImageNet validation folder (`val/<synset>/*.JPEG`) on Google
Drive, set `imagenet_val` below and run all cells. The model weights and Stable Diffusion are downloaded
on first use. The synthetic set, the record and a resume folder are kept on Drive: after a disconnect,
run all cells again and the work goes on where it stopped (the set from its last image, QDrop after its
last finished block). Without a CUDA GPU or without the folder (as when this book is built), the notebook
runs nothing and shows the published numbers with any ImageNet records found in `results_dir`.
""", """
profile = "mini"        # papermill parameter of the book build (unused: this notebook always uses the ImageNet track)
imagenet_profile = "imagenet-colab"  # sized for a Colab T4 (~36 min); "imagenet": the paper's setting (~2.3 h)
imagenet_val = "/content/drive/MyDrive/imagenet/val"  # val/<synset>/*.JPEG
imagenet_train = ""     # optional train/<synset>/*.JPEG: needed for data real and for the generalization probes
model = "resnet18"      # any model of the profile
w_bits = 2
a_bits = 4
data = "mixup"          # real | noise | single | genq | mixup | mixup-embed
n_calib = None          # None: the profile's (imagenet-colab 250, imagenet 1024)
iters = None            # QDrop steps per block; None: the profile's (imagenet-colab 5000, imagenet 20 000)
seed = 0
results_dir = ""        # "": in Colab MyDrive/mixq-results (kept across sessions), elsewhere ./results
""") + [
    code("""
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
from IPython.display import Markdown, display

from mixq_core.estimate import expected_seconds
from mixq_core.experiment import SYNTHETIC_SOURCES, ExperimentConfig, resume_folder, run
from mixq_core.profiles import load_profile
from mixq_core.report import beside_reference, ptq_records, records_frame, set_gallery
from mixq_core.results import RESULTS_DIR

in_colab = "google.colab" in sys.modules
results_dir = results_dir or ("/content/drive/MyDrive/mixq-results" if in_colab else str(RESULTS_DIR))
if in_colab and any(path.startswith("/content/drive") for path in (imagenet_val, results_dir)):
    from google.colab import drive

    drive.mount("/content/drive")
"""),
    md("## Is there a GPU and an ImageNet folder?"),
    code("""
track = load_profile(imagenet_profile)
config = ExperimentConfig(profile=imagenet_profile, model=model, w_bits=w_bits, a_bits=a_bits, data=data,
                          n_calib=n_calib, iters=iters, seed=seed).resolved()
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
missing = [what for what, ok in [("a CUDA GPU", gpu is not None),
                                 (f"the ImageNet val folder {imagenet_val!r}", Path(imagenet_val).is_dir())] if not ok]
ready = not missing
if ready:
    display(Markdown(f"GPU: **{gpu}**. Model `{model}` (weights `{track['pretrained_tags'].get(model)}`), "
                     f"W{w_bits}A{a_bits}, calibration `{data}` × {config.n_calib}, {config.iters} QDrop steps "
                     f"per block, generator `{track['generator']}` ({track['steps']} steps, guidance "
                     f"{track['guidance']})."))
else:
    display(Markdown("Not run here: this machine lacks " + " and ".join(missing) + ". The tables below show "
                     "the published numbers and any ImageNet records already in `results_dir`."))
"""),
    md("""
## How long it will take

An estimate for a free Colab T4, before anything starts (its figures and their sources are in
`mixq_core/estimate.py`; the `imagenet-colab` profile is sized with them). It assumes Stable Diffusion v1.5
at 0.14 s per image and solver step in fp16 (the rate diffusers measured on a T4), plus 0.3 s per image to
decode and save it; QDrop in fp32, since a T4 has no bf16 in hardware, at about 0.17 s per step of all of
resnet18's blocks (341 GFLOP per step at 5 TFLOPS, plus the memory-bound fake quantization); evaluation at
100 images/s, the pace of JPEG decoding on Colab's two CPU cores. Other GPUs differ: once a stage runs, its
progress bar shows the real rate and the time left.
"""),
    code("""
stages = pd.DataFrame(expected_seconds(track, model, n_images=config.n_calib, iters=config.iters,
                                       generated=data in SYNTHETIC_SOURCES))
total = (f"about **{stages['minutes'].sum():.0f} minutes** on a T4" if stages["minutes"].notna().all()
         else f"not estimated: there is no QDrop figure for {model} yet")
display(stages)
display(Markdown(f"In all: {total}."))
"""),
    md("""
## Generate, quantize, evaluate

One call: the calibration set is generated (or reused from `results_dir/sets/`), the model is
quantized and scored, and one JSON record is written under `results_dir/ptq/<profile>/`. A record
that exists is reused; a set that was cut short resumes from its last image, and the quantization
from its last finished block, whose state is kept in `results_dir/resume/` (the result is the same as
that of an uninterrupted run).
"""),
    code("""
record = None
if ready:
    record = run(config, results_dir=results_dir, imagenet_val=imagenet_val, imagenet_train=imagenet_train or None,
                 device="cuda", resume_dir=resume_folder(config, Path(results_dir) / "resume"))["metrics"]
    seconds = record["seconds"]
    display(Markdown(f"**top-1 {record['top1']:.2f} %** (full precision {record['fp_top1']:.2f} %, drop "
                     f"{record['drop']:.2f}) on {record['n_eval']} val images, on {record['device']}: synthesis "
                     f"{seconds['synthesis_seconds']:.0f} s, quantization {seconds['quantize_seconds']:.0f} s, "
                     f"evaluation {seconds['eval_seconds']:.0f} s."))
"""),
    code("""
if record is not None and record["set_folder"]:
    set_gallery(record["set_folder"], n=16, title=f"{data} calibration images (first 16)")
    plt.show()
"""),
    md("## Beside the published numbers"),
    code("""
records = [r for name in dict.fromkeys([imagenet_profile, "imagenet-colab", "imagenet"])
           for r in ptq_records(name, results_dir)]
frame = records_frame(records)
table = beside_reference(frame, [model])
table
"""),
    code("""
plot = table.assign(label=table["source"] + " (" + table["calibration"] + ")")
axis = sns.barplot(data=plot, y="label", x="drop", hue="bits", orient="h")
axis.set(xlabel="top-1 drop from full precision (points)", ylabel="", title=f"{model} on ImageNet")
plt.show()
""", hide=True),
]


def add_opening(path: Path) -> None:
    """Give a notebook kept as JSON (00_models) the same badge and install cell as the others."""
    notebook = nbformat.read(path, as_version=4)
    if "colab-badge" in notebook.cells[0].source:  # refresh them: the repository setting may have changed
        title, _, rest = notebook.cells[0].source.partition("\n\n")
        rest = rest.partition("\n\n")[2] if rest.startswith("[![Open In Colab]") else rest
        notebook.cells[0].source = f"{title}\n\n{colab_badge(path.stem)}\n\n{rest}".rstrip()
        notebook.cells[1].source = install_cell().source
        path.write_text(nbformat.writes(notebook) + "\n")
        return
    first = notebook.cells[0].source.split("\n", 1)
    title, rest = first[0], first[1] if len(first) > 1 else ""
    head = opening(path.stem, title.removeprefix("# "), rest, "")[:2]
    notebook.cells = head + notebook.cells[1:]
    path.write_text(nbformat.writes(notebook) + "\n")


def main() -> None:
    add_opening(NOTEBOOK_DIR / "00_models.ipynb")
    for name, cells in NOTEBOOKS.items():
        notebook = new_notebook(cells=cells, metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"}})
        for index, cell in enumerate(notebook.cells):  # stable ids: a rebuild changes only the cells that changed
            cell.id = hashlib.sha256(f"{name}:{index}:{cell.source}".encode()).hexdigest()[:8]
        nbformat.validate(notebook)
        path = NOTEBOOK_DIR / f"{name}.ipynb"
        path.write_text(nbformat.writes(notebook) + "\n")
        print(path)


if __name__ == "__main__":
    main()
