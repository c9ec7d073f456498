"""pytest plugin (`-p aptutils.plugins.pytest` in pyproject.toml's addopts): the book's data
paths made absolute, and the GPU edition's chapters skipped without CUDA."""
from __future__ import annotations

from pathlib import Path


def pytest_configure(config) -> None:
    """Make relative APTBOOK_DATA / APTBOOK_STORE absolute against the folder pytest started in,
    before nbval starts a kernel in book/, whichever test paths were collected."""
    import os
    import tempfile

    from ..core.store import absolute_path_variables

    absolute_path_variables()
    # chapters run by the tests write their exports (core.exports) here, never into book/exports
    os.environ.setdefault("APTBOOK_EXPORTS", tempfile.mkdtemp(prefix="aptbook-exports-"))


def pytest_collection_modifyitems(config, items) -> None:
    """nbval re-executes the GPU edition's chapters (book/gpu/) only where CUDA is present;
    elsewhere they are skipped with that reason (tests/test_parts.py still checks their verdict
    tables and recorded parameters)."""
    import pytest
    import torch

    from ..parts import GPU

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA: book/gpu/ was executed on a GPU; on CPU only its "
                                   "verdict tables and parameters are checked (tests/test_parts.py)")
    for item in items:
        if GPU.folder in Path(str(item.path)).resolve().parents:
            item.add_marker(skip)
