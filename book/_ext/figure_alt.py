"""Sphinx extension: give every captioned figure's image its caption as alternative text.

MyST-NB renders a notebook figure (a cell with ``mystnb: figure: caption``) as an image without ``alt``, and
the HTML writer then falls back to the image's file path, so a screen reader reads out a hash such as
"../_images/f81001….png". The caption says what the figure shows; it becomes the alt text of each image
in the figure that has none of its own.
"""

from docutils import nodes


def _alt_from_caption(app, doctree, docname):
    for figure in doctree.findall(nodes.figure):
        captions = [child for child in figure.children if isinstance(child, nodes.caption)]
        if not captions:
            continue
        text = " ".join(captions[0].astext().split())
        for image in figure.findall(nodes.image):
            if not image.get("alt"):
                image["alt"] = text


def setup(app):
    app.connect("doctree-resolved", _alt_from_caption)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
