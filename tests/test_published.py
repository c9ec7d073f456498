"""Published models: found only for their exact recipe, and only when their weights check out."""
import json

import pytest

from aptutils.core.errors import DataError
from aptutils.training.published import publish, published_folder, sha256_of

RECIPE = {"samples": "samples-abc", "hidden_size": 16, "ws_list": (1, 2), "ws": 64}


@pytest.fixture
def trained(tmp_path):
    source = tmp_path / "store-model"
    source.mkdir()
    (source / "model.safetensors").write_bytes(b"weights")
    (source / "config.json").write_text("{}")
    (source / "log_history.json").write_text("[]")
    (source / "card.json").write_text(json.dumps({"ws": 64, "steps": 8}))
    return source


def test_publish_then_find_by_exact_recipe(trained, tmp_path):
    root = tmp_path / "models"
    folder = publish(trained, RECIPE, "smoke-ws64", "python -m aptutils pretrain", root=root,
                     extra={"tokenizer_key": "tok"})
    card = json.loads((folder / "card.json").read_text())
    assert card["sha256"] == sha256_of(trained / "model.safetensors") and card["steps"] == 8
    assert card["samples_key"] == "samples-abc" and card["tokenizer_key"] == "tok"
    assert published_folder(dict(RECIPE), root) == folder
    assert published_folder({**RECIPE, "hidden_size": 32}, root) is None
    assert not list(root.glob(".*partial"))


def test_a_changed_weight_file_is_refused(trained, tmp_path):
    root = tmp_path / "models"
    folder = publish(trained, RECIPE, "smoke-ws64", "cmd", root=root)
    (folder / "model.safetensors").write_bytes(b"tampered")
    with pytest.raises(DataError, match="sha256"):
        published_folder(RECIPE, root)
