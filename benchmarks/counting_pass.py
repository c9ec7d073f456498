"""The all-blocks counting pass against one plain MLM forward over the same W_test (`run.py`'s
`readout`).

Counting pass: `readout.counting.count_maskings` over one masking, as the book runs it: one trunk
pass with output_hidden_states (bf16), then for every block every reader of the block counts (a
probe head per block, the trained MLM head as lens, the tuned lens's translators) on the modified
positions only, counts per (kind, token) and the sparse confusions. Baseline: one plain
`BertForMaskedLM` forward (dense logits over every position, as a user would call it) in fp32 and
in bf16. `counting-bf16-floor` is the same pass with every reader's argmax taken over bf16 logits
(each decoder cast once): not exact, never used by the book, only the floor of any bf16 screen,
which must also re-score its near-ties in fp32. Run isolated, each variant has its own process,
so its peak memory (max RSS) is its own:

    python benchmarks/counting_pass.py --variant counting --vocab 30522 --hidden 128 --samples 1000
"""
from __future__ import annotations

import argparse
import copy
import json
import resource
import subprocess
import sys
import time

import numpy as np
import torch

VARIANTS = ("plain-fp32", "plain-bf16", "counting", "counting-bf16-floor")


def model_and_test_set(vocab: int, hidden: int, samples: int):
    from aptutils.core.params import resolve
    from aptutils.data.masking import mask_tokens
    from aptutils.models.bert import BertRecipe, new_model

    settings = resolve({"profile": "cpu", "hidden_size": hidden, "num_heads": max(1, hidden // 64)})
    model = new_model(settings.recipe(BertRecipe), vocab, 0).eval()
    ids = np.random.default_rng(0).integers(5, vocab, (samples, settings.seq_len))
    ids[:, 0], ids[:, -1] = 2, 3
    return model, mask_tokens(ids, [0, 1, 2, 3, 4], 4, vocab, 0.15, seed=0)


@torch.no_grad()
def plain_forward(model, inputs, precision: str) -> float:
    from transformers import BertForMaskedLM

    from aptutils.core.device import autocast

    dense = BertForMaskedLM(model.config).eval()
    dense.load_state_dict(model.state_dict())
    started = time.perf_counter()
    for start in range(0, len(inputs), 64):
        batch = torch.as_tensor(inputs[start:start + 64]).long()
        with autocast("cpu", precision):
            dense(input_ids=batch).logits.argmax(-1)
    return time.perf_counter() - started


def bf16_sliced_argmax(sliced_argmax):
    """`counting.sliced_argmax` over bf16 logits (each decoder cast to bf16 once): the floor."""
    cast: dict[int, torch.nn.Linear] = {}

    def argmax(hidden, decoder, width):
        if id(decoder) not in cast:
            cast[id(decoder)] = copy.deepcopy(decoder).bfloat16()
        return sliced_argmax(hidden.bfloat16(), cast[id(decoder)], width)

    return argmax


def counting_pass(model, inputs, labels, kinds, bf16_floor: bool = False) -> float:
    import aptutils.readout.counting as counting  # patched below (its sliced_argmax)
    from aptutils.readout.counting import count_maskings
    from aptutils.readout.probes import new_probe_heads
    from aptutils.readout.readers import LensReader, ProbeReader, TunedLensReader
    from aptutils.readout.tuned_lens import new_translators

    blocks = model.config.num_hidden_layers + 1
    tied = model.bert.embeddings.word_embeddings.weight
    readers = (ProbeReader(new_probe_heads(model.config, blocks, seed=0, embeddings=tied).eval()),
               LensReader(model), TunedLensReader(model, new_translators(model.config.hidden_size,
                                                                          blocks).eval()))
    exact = counting.sliced_argmax
    if bf16_floor:
        counting.sliced_argmax = bf16_sliced_argmax(exact)
    try:
        started = time.perf_counter()
        count_maskings(model, {reader.name: reader for reader in readers},
                       [(inputs, labels, kinds)], model.config.vocab_size)
        return time.perf_counter() - started
    finally:
        counting.sliced_argmax = exact  # the other benchmarks of this process count exactly


def run_variant(variant: str, vocab: int, hidden: int, samples: int) -> dict:
    """Seconds of one variant and the peak memory of this process (GB)."""
    model, (inputs, labels, kinds) = model_and_test_set(vocab, hidden, samples)
    seconds = (counting_pass(model, inputs, labels, kinds, variant == "counting-bf16-floor")
               if variant.startswith("counting")
               else plain_forward(model, inputs, variant.split("-")[1]))
    return {"seconds": seconds, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def measure(vocab: int, hidden: int, samples: int, isolated: bool = True) -> dict[str, dict]:
    """Every variant, each in its own process when `isolated` (else in this one: the peak
    memory is then the largest so far, not the variant's own)."""
    if not isolated:
        return {variant: run_variant(variant, vocab, hidden, samples) for variant in VARIANTS}
    results = {}
    for variant in VARIANTS:
        output = subprocess.run([sys.executable, __file__, "--variant", variant, "--vocab", str(vocab),
                                 "--hidden", str(hidden), "--samples", str(samples)],
                                capture_output=True, text=True, check=True).stdout
        results[variant] = json.loads(output.strip().splitlines()[-1])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", choices=VARIANTS, required=True)
    parser.add_argument("--vocab", type=int, default=30_522)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--samples", type=int, default=1_000)
    options = parser.parse_args()
    print(json.dumps(run_variant(options.variant, options.vocab, options.hidden, options.samples)))


if __name__ == "__main__":
    main()
