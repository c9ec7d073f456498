"""One short end-to-end run of the `gpu` profile on a CUDA device, stage by stage.

Pre-trains a reduced W_S series, runs the all-blocks counting pass with both protocols (the
probes trained on the GPU), and fine-tunes with both protocols (frozen trunk and full
fine-tuning of blocks 0 and 6). Each stage is timed; a failing stage is reported and the next
one still runs. Prints, and writes to --out, one JSON record.

    APTBOOK_DATA=... python benchmarks/gpu_check.py [--out gpu_check.json] [-p NAME VALUE ...]
"""
from __future__ import annotations

import argparse
import json
import time
import traceback

import torch

from aptutils.__main__ import parse_value
from aptutils.core.params import resolve
from aptutils.data.pretraining import DataRecipe, pretraining_data
from aptutils.readout.reading import CountsRecipe, block_counts
from aptutils.reports.ch5_finetuning import accuracy_table
from aptutils.training.finetune import FinetuneRecipe, finetune_all
from aptutils.training.pretrain import SeriesRecipe, pretrain_series
from aptutils.training.subject import SubjectRecipe, load_subject

# A reduced gpu profile: a few minutes on one H100.
CHECK = {"profile": "gpu", "ws_list": "2000,8000", "epochs": 4.0, "eval_every": 200,
         "probe_samples": 4_000, "few_rel_labels": 8, "finetune_full_blocks": "0,6",
         "finetune_epochs": 2.0, "finetune_lr": 1e-4}


def stage(record: dict, name: str, work) -> object:
    """Run `work()`, storing its seconds, its summary or its traceback under `name`."""
    started = time.perf_counter()
    try:
        result, summary = work()
        record[name] = {"seconds": round(time.perf_counter() - started, 1), **summary}
        return result
    except Exception:  # the point is to see every stage's fate in one device run
        record[name] = {"seconds": round(time.perf_counter() - started, 1),
                        "error": traceback.format_exc(limit=8)}
        return None
    finally:
        print(json.dumps({name: record[name]}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="gpu_check.json")
    parser.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    args = parser.parse_args()
    chosen = CHECK | {name: parse_value(value) for name, value in args.p}
    settings = resolve(chosen)
    record = {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
              "torch": torch.__version__,
              "settings": {name: str(settings.values[name]) for name in chosen}}

    data = stage(record, "data", lambda: (pretraining_data(settings.recipe(DataRecipe)), {}))
    stage(record, "pretrain", lambda: _pretrain(settings))
    stage(record, "counting", lambda: _counting(settings, data))
    stage(record, "finetune", lambda: _finetune(settings, data))
    record["peak_gpu_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2) \
        if torch.cuda.is_available() else None
    with open(args.out, "w") as out:
        json.dump(record, out, indent=1)


def _pretrain(settings):
    series = pretrain_series(settings.recipe(SeriesRecipe))
    return series, {str(ws): {k: model.card.get(k) for k in
                              ("heldout_accuracy", "heldout_mean_apt", "wall_seconds", "steps",
                               "tokens_seen", "device")}
                    for ws, model in series.items()}


def _counting(settings, data):
    if data is None:  # the data stage failed: try again here, as the counting used to
        data = pretraining_data(settings.recipe(DataRecipe))
    subject = load_subject(settings.recipe(SubjectRecipe), data)
    counts = block_counts(settings.recipe(CountsRecipe), subject, data)
    return counts, {protocol: [round(b.counts.accuracy, 4) for b in blocks]
                    for protocol, blocks in counts.items()}


def _finetune(settings, data):
    table = accuracy_table(finetune_all(settings.recipe(FinetuneRecipe), data=data))
    table = table[table["block"].isin([0, settings.num_layers])]
    rows = table.groupby(["task", "model", "protocol", "block"])["accuracy"].first().round(3)
    return table, {" / ".join(map(str, key)): value for key, value in rows.items()}


if __name__ == "__main__":
    main()
