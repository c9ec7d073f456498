"""Tests never touch the network, and write artifacts into a store of their own."""
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def smoke_store(tmp_path_factory):
    """One artifact store shared by every smoke-profile run of the session."""
    return tmp_path_factory.mktemp("store")


@pytest.fixture(autouse=True)
def isolated_store(smoke_store, monkeypatch):
    monkeypatch.setenv("APTBOOK_STORE", str(smoke_store))
    return smoke_store
