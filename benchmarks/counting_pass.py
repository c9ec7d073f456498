"""The all-blocks counting pass against one plain MLM forward over the same W_test.

Counting pass: one trunk pass with output_hidden_states (bf16), then for every block both
protocols' heads (a probe head per block and the trained MLM head as lens) on the modified
positions only, counts per (kind, token) and the sparse confusion. Baseline: one plain
`BertForMaskedLM` forward (dense logits over every position, fp32, as a user would call it),
and the same in bf16. Each variant runs in its own process so its peak memory (max RSS) is its own.

    python benchmarks/counting_pass.py [--vocab 30522] [--hidden 128] [--samples 1000]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import torch


def model_and_test_set(vocab: int, hidden: int, samples: int):
    from aptutils.core.params import resolve
    from aptutils.data.masking import mask_tokens
    from aptutils.models.bert import new_model

    settings = resolve({"profile": "cpu", "hidden_size": hidden, "num_heads": max(1, hidden // 64)})
    model = new_model(settings, vocab, 0).eval()
    ids = np.random.default_rng(0).integers(5, vocab, (samples, settings.seq_len))
    ids[:, 0], ids[:, -1] = 2, 3
    return model, mask_tokens(ids, [0, 1, 2, 3, 4], 4, vocab, 0.15, seed=0)


@torch.no_grad()
def plain_forward(model, inputs, precision: str) -> float:
    from transformers import BertForMaskedLM

    dense = BertForMaskedLM(model.config).eval()
    dense.load_state_dict(model.state_dict())
    started = time.perf_counter()
    for start in range(0, len(inputs), 64):
        batch = torch.as_tensor(inputs[start:start + 64]).long()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            dense(input_ids=batch).logits.argmax(-1)
    return time.perf_counter() - started


def counting_pass(model, inputs, labels, kinds) -> float:
    from aptutils.readout.counting import count_all_blocks
    from aptutils.readout.features import block_features
    from aptutils.readout.probes import new_probe_heads
    from aptutils.readout.readers import LensReader, ProbeReader

    blocks = model.config.num_hidden_layers + 1
    readers = {"probe": ProbeReader(new_probe_heads(model.config, blocks, seed=0).eval()),
               "lens": LensReader(model)}
    started = time.perf_counter()
    features = block_features(model, inputs, labels, kinds)
    count_all_blocks(readers, features, model.config.vocab_size)
    return time.perf_counter() - started


def run_variant(variant: str, vocab: int, hidden: int, samples: int) -> dict:
    model, (inputs, labels, kinds) = model_and_test_set(vocab, hidden, samples)
    seconds = (counting_pass(model, inputs, labels, kinds) if variant == "counting"
               else plain_forward(model, inputs, variant.split("-")[1]))
    return {"seconds": seconds, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocab", type=int, default=30_522)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--samples", type=int, default=1_000)
    parser.add_argument("--variant")
    options = parser.parse_args()
    if options.variant:
        print(json.dumps(run_variant(options.variant, options.vocab, options.hidden, options.samples)))
        return
    results = {}
    for variant in ("plain-fp32", "plain-bf16", "counting"):
        output = subprocess.run([sys.executable, __file__, "--variant", variant, "--vocab", str(options.vocab),
                                 "--hidden", str(options.hidden), "--samples", str(options.samples)],
                                capture_output=True, text=True, check=True).stdout
        results[variant] = json.loads(output.strip().splitlines()[-1])
    report = {"vocab": options.vocab, "hidden": options.hidden, "samples": options.samples,
              "threads": torch.get_num_threads(), "results": results,
              "counting / plain fp32": round(results["counting"]["seconds"] / results["plain-fp32"]["seconds"], 2),
              "counting / plain bf16": round(results["counting"]["seconds"] / results["plain-bf16"]["seconds"], 2)}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
