"""Chapter 2's reading of an external checkpoint (`run.py`'s `external`): a random 6-layer BERT of
width 384 with the paper's 30,522-token vocabulary (bert-base-uncased's tokenizer from the data
mirror), read block by block on the cpu profile as `papermill chapters/02_apt.ipynb ... -p model
<folder>` reads it: W_S and W_test tokenized with the checkpoint's tokenizer, then the probe
heads, the tuned lens and the counting pass of the model and of its untrained copy, in a store of
its own. A random model is enough for a timing (its readers learn little, so early stopping may
end them sooner than a trained model's: the line is a lower bound for such a model).

    APTBOOK_DATA=../shared/data .venv/bin/python benchmarks/external_reading.py
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

SHAPE = {"num_hidden_layers": 6, "hidden_size": 384, "num_attention_heads": 6,
         "intermediate_size": 1536, "max_position_embeddings": 512}
# run.py --quick: W_test once, without its extension (1,000 samples, about 1/13 of the cpu
# profile's modified positions: the counting pass scales with them)
QUICK_KNOBS = {"test_maskings": 1, "test_extension": 0}
TINY_SHAPE = {"num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 2,
              "intermediate_size": 64, "max_position_embeddings": 512}  # the tests'


def make_checkpoint(folder: Path, data_root: Path, shape: dict = SHAPE) -> None:
    """A random BertForMaskedLM of SHAPE with bert-base-uncased's tokenizer, saved to `folder`."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    tokenizer = AutoTokenizer.from_pretrained(data_root / "bert-base-uncased")
    torch.manual_seed(0)
    BertForMaskedLM(BertConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                               **shape)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def measure(profile: str = "cpu", knobs: dict | None = None, shape: dict = SHAPE) -> dict:
    """Seconds of each stage of chapter 2's reading of the checkpoint, and the readers' objectives."""
    from aptutils.reports.opening import with_checkpoint
    from aptutils.core.params import resolve
    from aptutils.core.store import Store
    from aptutils.data.pretraining import DataRecipe, pretraining_data
    from aptutils.readout.reading import CountsRecipe, ReadersRecipe, block_counts, reader_training
    from aptutils.training.subject import SubjectRecipe, load_subject

    data_root = Path(os.environ.get("APTBOOK_DATA", "../shared/data")).resolve()
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work) / "checkpoint"
        make_checkpoint(folder, data_root, shape)
        settings = with_checkpoint(resolve({"profile": profile, "model": str(folder),
                                            **(knobs or {})}))
        store = Store(Path(work) / "store")
        seconds = {}
        started = time.perf_counter()
        data = pretraining_data(settings.recipe(DataRecipe), store)
        seconds["data"] = time.perf_counter() - started
        subjects = {}
        for trained in (True, False):  # each timed from loading its model, as the book reads it
            started = time.perf_counter()
            subjects[trained] = load_subject(settings.recipe(SubjectRecipe), data, trained,
                                             store=store)
            counts = block_counts(settings.recipe(CountsRecipe), subjects[trained], data, store)
            seconds["model" if trained else "untrained model"] = time.perf_counter() - started
        records = reader_training(settings.recipe(ReadersRecipe), subjects[True], data, store)
        seconds["probe training (model)"] = records["probe"]["seconds"]
        seconds["tuned-lens training (model)"] = records["tuned-lens"]["seconds"]
        seconds["total"] = seconds["data"] + seconds["model"] + seconds["untrained model"]
        return {**seconds, "probe objective": records["probe"]["objective"],
                "positions": int(counts["probe"][0].counts.total.sum()),
                "probe steps": max(records["probe"]["curves"]["stop_step"]),
                "tuned-lens steps": max(records["tuned-lens"]["curves"]["stop_step"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("-p", nargs=2, action="append", default=[], metavar=("KNOB", "VALUE"))
    options = parser.parse_args()
    from aptutils.__main__ import parse_value

    knobs = {knob: parse_value(value) for knob, value in options.p}
    print(json.dumps(measure(options.profile, knobs), indent=1))


if __name__ == "__main__":
    main()
