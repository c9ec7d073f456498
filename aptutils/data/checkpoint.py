"""An external BERT checkpoint (the `model` knob): its folder, files, tokenizer and architecture.

`model` names a local Hugging Face checkpoint folder, a folder of that name in the offline mirror
($APTBOOK_DATA), or a hub id (downloaded where there is network). The checkpoint brings its own
tokenizer (the corpus is tokenised with it) and its own architecture (the knobs hidden_size,
num_layers, num_heads and ffn_size take its values). A checkpoint may lack the MLM head (a plain
`BertModel`, e.g. a sentence-embedding BERT): then only readers that train their own head read it.
Artifacts made from it are keyed by its resolved folder and a sha256 of its files. Used by
chapters 2-6 through `data.tokenizer`, `training.subject` and `reports.opening.configure`.
"""
from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

from ..core.errors import DataError, ParameterError
from ..data.corpus import mirror_root

# knob -> the BERT config entry it takes from the checkpoint
ARCHITECTURE = {"hidden_size": "hidden_size", "num_layers": "num_hidden_layers",
                "num_heads": "num_attention_heads", "ffn_size": "intermediate_size"}
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json",
                   "special_tokens_map.json", "added_tokens.json")
HUB_FILES = ["*.json", "*.txt", "*.safetensors", "pytorch_model*.bin"]  # no TF, Flax, ONNX copies
HEAD_PREFIX = "cls.predictions."  # BertForMaskedLM's (and BertForPreTraining's) MLM head
HEAD_READERS = ("lens", "tuned-lens")  # readers that read through the model's own MLM head
FIX = ("pass a folder holding a Hugging Face BERT checkpoint (config.json, model.safetensors or "
       "pytorch_model.bin, and its tokenizer), a hub id where there is network, or leave model "
       "None for the book's own models")


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name


@functools.cache
def checkpoint_folder(name: str) -> Path:
    """The checkpoint's folder: `name` itself, the mirror's folder of that name, or a hub
    download; else a one-line DataError naming the fix."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path.resolve()
    root = mirror_root()
    if root is not None and (root / name).is_dir():
        return (root / name).resolve()
    if path.exists() or _looks_like_path(name):
        raise DataError(f"model={name!r}: no such folder; {FIX}")
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
        return Path(snapshot_download(name, allow_patterns=HUB_FILES)).resolve()
    except Exception as error:
        raise DataError(f"model={name!r}: not a folder here, and the hub cannot give it "
                        f"({type(error).__name__}; offline?); {FIX}") from None


def checkpoint_config(name: str) -> dict:
    """The checkpoint's config.json, checked to be a BERT with weights beside it."""
    folder = checkpoint_folder(name)
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        raise DataError(f"model={name!r}: {folder} has no readable config.json, so it is not a "
                        f"Hugging Face checkpoint; {FIX}") from None
    if config.get("model_type") != "bert":
        raise DataError(f"model={name!r}: config.json says model_type "
                        f"{config.get('model_type')!r}; the book reads BERT checkpoints "
                        f"(model_type 'bert') only; {FIX}")
    if not any((folder / f).is_file() for f in WEIGHT_FILES):
        raise DataError(f"model={name!r}: {folder} has no model.safetensors or pytorch_model.bin; "
                        f"{FIX}")
    return config


def weight_names(folder: Path) -> list[str]:
    """The names of the checkpoint's tensors (from an index, the safetensors header or the bin)."""
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (folder / index).is_file():
            return list(json.loads((folder / index).read_text())["weight_map"])
    if (folder / "model.safetensors").is_file():
        from safetensors import safe_open

        with safe_open(str(folder / "model.safetensors"), framework="pt") as weights:
            return list(weights.keys())
    import torch

    return list(torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True))


@functools.cache
def has_mlm_head(name: str) -> bool:
    """Whether the checkpoint holds an MLM head (cls.predictions.*), as BertForMaskedLM saves."""
    checkpoint_config(name)
    return any(key.startswith(HEAD_PREFIX) for key in weight_names(checkpoint_folder(name)))


def files_digest(folder: Path, names: tuple[str, ...] | None = None) -> str:
    """sha256 over the names and bytes of the folder's files (`names` only, where given)."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and (names is None or p.name in names))
    stats = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return _digest(folder, stats)


@functools.lru_cache(maxsize=None)
def _digest(folder: Path, stats: tuple) -> str:
    digest = hashlib.sha256()
    for name, _, _ in stats:
        digest.update(f"{name}\0".encode())
        with open(folder / name, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def checkpoint_tokenizer_params(name: str) -> dict:
    """What determines the checkpoint's tokenizer: its folder and its tokenizer files."""
    folder = checkpoint_folder(name)
    return {"kind": "checkpoint", "path": str(folder), "files": files_digest(folder, TOKENIZER_FILES)}


def checkpoint_tokenizer(name: str):
    """The checkpoint's own tokenizer (AutoTokenizer from its folder), checked against its
    vocabulary: a BERT tokenizer with [MASK] and [PAD], as many tokens as the model has rows."""
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    config, folder = checkpoint_config(name), checkpoint_folder(name)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except Exception as error:
        raise DataError(f"model={name!r}: its tokenizer cannot be loaded from {folder} "
                        f"({type(error).__name__}); the checkpoint must hold its tokenizer "
                        f"(tokenizer.json or vocab.txt)") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    if tokenizer.mask_token_id is None or tokenizer.pad_token_id is None:
        raise DataError(f"model={name!r}: its tokenizer has no [MASK] or [PAD] token; the book "
                        f"masks tokens as BERT does")
    if len(tokenizer) != config["vocab_size"]:
        raise DataError(f"model={name!r}: its tokenizer has {len(tokenizer):,} tokens but the "
                        f"model {config['vocab_size']:,} rows; pass a checkpoint whose tokenizer "
                        f"matches its vocabulary")
    return tokenizer


def checkpoint_params(name: str, samples: str, ws: int) -> dict:
    """Exactly what determines a model read from the checkpoint (its part of artifact keys):
    its folder and files, and the samples whose first `ws` train its readers."""
    folder = checkpoint_folder(name)
    return {"checkpoint": str(folder), "files": files_digest(folder), "samples": samples, "ws": ws}


def checkpoint_architecture(name: str, seq_len: int, protocol: str) -> dict:
    """The knobs the checkpoint `name` sets (hidden_size, num_layers, num_heads, ffn_size), after
    checking a run's `seq_len` (within its positions) and `protocol` (lens and tuned lens need its
    MLM head) against it."""
    config = checkpoint_config(name)
    if seq_len > config.get("max_position_embeddings", 512):
        raise ParameterError(f"seq_len={seq_len}: model={name!r} has "
                             f"{config['max_position_embeddings']} positions; choose seq_len <= "
                             f"{config['max_position_embeddings']}")
    if protocol in HEAD_READERS and not has_mlm_head(name):
        raise ParameterError(f"protocol={protocol!r} reads blocks through the model's "
                             f"own MLM head, and model={name!r} has none (a plain BertModel); "
                             f"use -p protocol probe")
    return {knob: config[key] for knob, key in ARCHITECTURE.items()}
