"""Train one pre-training recipe and print its curve: masked accuracy and masked <APT> on W_test
against step and wall time, beside the most-frequent-token rule.

    APTBOOK_DATA=../shared/data .venv/bin/python benchmarks/recipe.py --ws 16000 -p epochs 24
    .venv/bin/python benchmarks/recipe.py --ws 16000 -p epochs 24 --store /tmp/recipes  # reuse

Every -p is a knob of the book (`papermill --help-notebook chapters/01_pretraining.ipynb`); the
model goes to its own store (default .aptbook-recipes/), so the book's store is never touched, and
a finished recipe prints its curve again without training. Recipes tried: benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from aptutils.__main__ import parse_value
from aptutils.analysis.baselines import rule_counts
from aptutils.core.counts import token_counts
from aptutils.core.params import resolve
from aptutils.core.store import REPO_ROOT, Store, absolute_path_variables
from aptutils.data.masking import special_token_ids
from aptutils.data.pretraining import DataRecipe, pretraining_data
from aptutils.training.pretrain import SeriesRecipe, pretrained_model

CURVE_COLUMNS = {"step": "step", "eval_seconds": "seconds", "eval_loss": "loss",
                 "eval_masked_accuracy": "masked accuracy", "eval_masked_mean_apt": "masked <APT>",
                 "eval_accuracy": "all-modified accuracy"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ws", type=int, required=True, help="W_S of the one model trained")
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    parser.add_argument("--store", type=Path, default=REPO_ROOT / ".aptbook-recipes")
    args = parser.parse_args(argv)
    absolute_path_variables()
    chosen = {"profile": args.profile, "pretrain": "train",
              **{name: parse_value(value) for name, value in args.p}}
    settings = resolve({**chosen, "ws_list": str(args.ws)})
    store = Store(args.store)
    data = pretraining_data(settings.recipe(DataRecipe), store)
    model = pretrained_model(settings.recipe(SeriesRecipe), args.ws, data, store)
    samples, tokenizer = data.samples, data.tokenizer
    frequency = token_counts(samples.train_slice(args.ws), len(tokenizer), special_token_ids(tokenizer))
    test = [np.asarray(samples.array(n)) for n in ("test_inputs", "test_labels", "test_kinds")]
    unigram = rule_counts(*test, frequency, tokenizer.mask_token_id)["most frequent token"]
    log = model.log
    curve = log.dropna(subset=["eval_loss"])[[c for c in CURVE_COLUMNS if c in log]]
    print(f"recipe: {chosen}, W_S {args.ws:,}; most frequent token on masked positions: "
          f"{unigram.kind_accuracy('masked'):.3f}")
    print(curve.rename(columns=CURVE_COLUMNS).to_string(index=False, float_format="{:.3f}".format))
    return 0


if __name__ == "__main__":
    sys.exit(main())
