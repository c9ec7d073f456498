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
