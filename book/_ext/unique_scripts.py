"""Sphinx extension: drop repeated ``<script>`` entries from each page.

sphinx-thebe registers its inline configuration script on every ``env-before-read-docs`` event, and
a jupyter-book build can fire that event more than once; the page then declares ``const THEBE_JS_URL``
twice and the browser reports a page error. Keeping the first of identical scripts fixes that without
touching the installed packages.
"""


def _unique_scripts(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for script in context.get("script_files", []):
        # The same file or inline body twice, whatever its priority; an inline script's filename is
        # None or "" depending on who registered it.
        key = (getattr(script, "filename", None) or "", repr(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"][:] = unique


def setup(app):
    # Early: Sphinx stops calling html-page-context handlers at the first that returns a template name.
    app.connect("html-page-context", _unique_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

