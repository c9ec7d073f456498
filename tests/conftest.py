"""Tests never touch the network, and write artifacts into a store of their own.

Relative APTBOOK_DATA / APTBOOK_STORE (as in the README's test command) are made absolute here,
once, against the folder pytest was started in, before nbval starts a kernel in book/.
"""
import os

import pytest

from aptutils.core.store import absolute_path_variables

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
absolute_path_variables()


@pytest.fixture(scope="session")
def smoke_store(tmp_path_factory):
    """One artifact store shared by every smoke-profile run of the session."""
    return tmp_path_factory.mktemp("store")


@pytest.fixture(autouse=True)
def isolated_store(smoke_store, monkeypatch):
    monkeypatch.setenv("APTBOOK_STORE", str(smoke_store))
    return smoke_store


@pytest.fixture(scope="session")
def chapter_1_on_smoke(tmp_path_factory, smoke_store):
    """Chapter 1 executed once on the smoke profile (tests read it; they write copies, not it)."""
    from aptutils.notebooks import chapter_sources, execute_chapter

    output = tmp_path_factory.mktemp("chapter-1") / "01.ipynb"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("APTBOOK_STORE", str(smoke_store))
        execute_chapter(chapter_sources()[0], output, {"profile": "smoke"})
    return output
