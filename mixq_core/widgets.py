"""Interactive explorers for the notebooks (ipywidgets); each also has a plain function the book shows.

:func:`prompt_explorer` lets a reader pick classes, the number of classes per prompt and a
template, and see the prompts :func:`mixq_core.prompts.make_prompts` writes for them and, when a
generator is given, the images it draws. :func:`explore_prompts` is the same thing without
widgets (what an executed notebook renders statically).
"""

from __future__ import annotations

from .prompts import PromptConfig, default_template, load_vocabulary, make_prompts


def explore_prompts(vocabulary: str, classes: tuple[str, ...], k: int, template: str | None = None,
                    n: int | None = None, seed: int = 0, pipe=None, steps: int = 25, guidance: float = 3.0,
                    resolution: int | None = None):
    """Prompts (and images, with ``pipe``) for ``classes`` mixed ``k`` at a time.

    Returns ``(records, images)``; ``images`` is empty without a pipeline. ``n`` defaults to
    one round: as many prompts as classes.
    """
    from .synthesis import generate_images

    strategy = "single" if k == 1 else "mixup"
    config = PromptConfig(strategy=strategy, n=n or len(classes), vocabulary=vocabulary, k=k, seed=seed,
                          templates=(template,) if template else (), classes=tuple(classes), allow_unbalanced=True)
    records = make_prompts(config)
    images = generate_images(pipe, records, steps, guidance, resolution, pad_to=len(records)) if pipe else []
    return records, images


def show_prompts(records, images=(), columns: int = 5):
    """A figure of the images titled by their prompts, or the prompt list when there are no images."""
    import matplotlib.pyplot as plt

    if not images:
        for record in records:
            print(record.text)
        return None
    rows = -(-len(images) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 2.2, rows * 2.4), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, record, image in zip(axes.flat, records, images, strict=False):
        axis.imshow(image, cmap="gray")
        axis.set_title(record.text.removeprefix("a photo of "), fontsize=7, wrap=True)
    figure.tight_layout()
    return figure


def prompt_explorer(vocabulary: str, pipe=None, steps: int = 25, guidance: float = 3.0, resolution: int | None = None):
    """An ipywidgets panel: classes, k and template in, prompts and (with ``pipe``) images out."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    names = load_vocabulary(vocabulary).names
    classes = widgets.SelectMultiple(options=names, value=names[: min(4, len(names))], rows=8, description="classes")
    k = widgets.IntSlider(value=2, min=1, max=4, description="k")
    template = widgets.Dropdown(options=["default", "a picture of a {c1} and a {c2}", "a {c1} next to a {c2}"],
                                value="default", description="template")
    seed = widgets.IntText(value=0, description="seed")
    button = widgets.Button(description="make prompts" + (" and images" if pipe else ""))
    output = widgets.Output()

    def make(_=None):
        with output:
            output.clear_output(wait=True)
            chosen = template.value if template.value != "default" else default_template(k.value)
            if chosen.count("{c") != k.value:
                print(f"template {chosen!r} names {chosen.count('{c')} classes; choose k = {chosen.count('{c')}")
                return
            if len(classes.value) < k.value:
                print(f"pick at least k = {k.value} classes")
                return
            records, images = explore_prompts(vocabulary, tuple(classes.value), k.value, chosen, seed=seed.value,
                                              pipe=pipe, steps=steps, guidance=guidance, resolution=resolution)
            figure = show_prompts(records, images)
            if figure is not None:
                plt.show()

    button.on_click(make)
    panel = widgets.VBox([widgets.HBox([classes, widgets.VBox([k, template, seed, button])]), output])
    display(panel)
    return panel
