"""The probe's sampled softmax against its full softmax on the book's own model (`probe_softmax`):
the W_S 16,000 model of the cpu profile (vocabulary 8,192), probe heads trained both ways with
every other knob the book's, each read with the full-vocabulary argmax over the book's W_test
maskings. Prints, per block, masked accuracy and masked <APT> of both, their differences (target:
within 0.01) and each training's wall time. Uses the artifact store (the full-softmax probes are
the book's own, so a warm store trains only the sampled ones).

    APTBOOK_DATA=../shared/data .venv/bin/python benchmarks/sampled_probe.py [--candidates 4096]
"""
from __future__ import annotations

import argparse
import json

import pandas as pd

TOLERANCE = 0.01


def measure(candidates: int, profile: str = "cpu") -> tuple[pd.DataFrame, dict[str, float]]:
    """(per block: masked accuracy and <APT> of both objectives and their differences,
    {objective: training seconds})."""
    from aptutils.core.params import resolve
    from aptutils.core.store import Store
    from aptutils.data.pretraining import DataRecipe, pretraining_data
    from aptutils.readout.probes import sampled_candidates
    from aptutils.readout.reading import CountsRecipe, ReadersRecipe, block_counts, reader_training
    from aptutils.training.subject import SubjectRecipe, load_subject

    store = Store()
    rows, seconds = {}, {}
    book = resolve({"profile": profile})  # the book's own probes: auto, the full softmax here
    sampled = resolve({"profile": profile, "probe_softmax": "sampled",
                       "probe_candidates": candidates})
    if sampled_candidates(book.probe_softmax, book.probe_candidates, book.vocab_size) is not None:
        raise SystemExit(f"the {profile} profile's probes already train with a sampled softmax")
    for objective, settings in (("full", book), ("sampled", sampled)):
        data = pretraining_data(settings.recipe(DataRecipe), store)
        subject = load_subject(settings.recipe(SubjectRecipe), data, store=store)
        probe = block_counts(settings.recipe(CountsRecipe), subject, data, store)["probe"]
        seconds[objective] = reader_training(settings.recipe(ReadersRecipe), subject, data,
                                             store)["probe"]["seconds"]
        for block, item in enumerate(probe):
            rows.setdefault(block, {})[f"masked accuracy, {objective}"] = item.counts.kind_accuracy("masked")
            rows[block][f"masked ⟨APT⟩, {objective}"] = item.counts.mean_apt("masked")
    table = pd.DataFrame.from_dict(rows, orient="index").rename_axis("block")
    for what in ("masked accuracy", "masked ⟨APT⟩"):
        table[f"{what}: sampled − full"] = table[f"{what}, sampled"] - table[f"{what}, full"]
    return table, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", type=int, default=4096)
    options = parser.parse_args()
    table, seconds = measure(options.candidates)
    print(table.to_markdown(floatfmt="+.4f"))
    largest = table.filter(like="sampled − full").abs().to_numpy().max()
    print(json.dumps({"training seconds": seconds, "largest difference": round(float(largest), 4),
                      "within": bool(largest <= TOLERANCE), "tolerance": TOLERANCE}))


if __name__ == "__main__":
    main()
