"""Sphinx extension (`sphinx.extra_extensions` in _config.yml): MathJax 3 served from the book
itself (no CDN), and the chapters' exports copied next to the rendered chapters."""
from __future__ import annotations

from pathlib import Path

from ..core.store import REPO_ROOT

# The files of the `django-static-mathjax` wheel (MathJax 3.2.2, no dependencies;
# requirements.txt), copied into _static/mathjax at every build; _config.yml sets mathjax_path.
MATHJAX_FILES = ("tex-mml-chtml.js", "input", "output/chtml", "a11y", "ui", "adaptors", "LICENSE")


def mathjax_source() -> Path:
    """The es5 folder of the installed MathJax 3."""
    import mathjax

    return Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"


def copy_mathjax(app, exception) -> None:
    """Sphinx `build-finished`: copy MathJax into the HTML output's _static/mathjax, and the
    chapters' exports (core.exports) next to the rendered chapters, where their links point."""
    import shutil

    from ..parts import PARTS

    if exception is not None or app.builder.format != "html":
        return
    for part in PARTS:  # book/exports, book/gpu/exports
        exports = part.folder / "exports"
        if exports.is_dir():
            target = Path(app.outdir) / exports.relative_to(REPO_ROOT)
            shutil.copytree(exports, target, dirs_exist_ok=True)
    source, target = mathjax_source(), Path(app.outdir) / "_static" / "mathjax"
    for name in MATHJAX_FILES:
        path = source / name if (source / name).exists() else source.parent / name
        if path.is_dir():
            shutil.copytree(path, target / name, dirs_exist_ok=True)
        elif path.is_file():
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / name)


def setup(app) -> dict:
    """Sphinx extension entry point: MathJax served offline."""
    if not (mathjax_source() / "tex-mml-chtml.js").is_file():
        raise RuntimeError("MathJax files missing: run .ci/setup (pip install django-static-mathjax)")
    app.connect("build-finished", copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
