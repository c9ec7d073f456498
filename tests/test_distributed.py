"""Several processes (`torchrun --nproc_per_node 2`, gloo on the CPU) against one process, on the
smoke profile at a tiny size: the all-blocks counting pass gives exactly the same count tables,
and pre-training gives the same held-out count tables.

Run as a script (`python tests/test_distributed.py MODE STORE OUT`, alone or under torchrun) this
file is also the work both sides run: MODE "pretrain" trains the one model of W_S and writes its
held-out counts; "count" counts every block with every reader (the model and the readers read
from STORE) and writes the tables. Only the first process writes OUT.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

WS = 64
# dropout 0: dropout masks are drawn per process for its own rows (see the pre-training test);
# 160 W_test samples: three trunk batches of 64, 64 and 32, so both processes count positions.
KNOBS = {"profile": "smoke", "pretrain": "train", "ws_list": str(WS), "dropout": 0.0,
         "test_samples": 160}


def work(mode: str, store: Path, out: Path) -> None:
    from aptutils.core.params import resolve
    from aptutils.core.store import Store
    from aptutils.readout.counting import processes
    from aptutils.reports.opening import block_run, run_data
    from aptutils.training.evaluation import heldout_counts
    from aptutils.training.pretrain import SeriesRecipe, pretrained_model

    settings = resolve(KNOBS)
    data = run_data(settings, Store(store))
    tables = {}
    if mode == "pretrain":
        model = pretrained_model(settings.recipe(SeriesRecipe), WS, data, Store(store)).load()
        test = [data.samples.array(name) for name in ("test_inputs", "test_labels", "test_kinds")]
        counts = heldout_counts(model, *test)
        tables = {"correct": counts.correct, "total": counts.total,
                  **{f"weight-{name}": p.detach().numpy() for name, p in model.named_parameters()}}
    else:
        for reader, blocks in block_run(settings, Store(store)).counts().items():
            for block, item in enumerate(blocks):
                tables[f"{reader}-{block}-correct"] = item.counts.correct
                tables[f"{reader}-{block}-total"] = item.counts.total
                for kind, matrix in enumerate(item.by_kind):
                    tables[f"{reader}-{block}-confusion-{kind}"] = matrix.toarray()
    if processes()[0] == 0:
        np.savez(out, **tables)


def run(mode: str, store: Path, out: Path, processes: int) -> dict[str, np.ndarray]:
    """Run `work` in `processes` processes (1: plain python; else torchrun), one thread each."""
    script = [str(Path(__file__).resolve()), mode, str(store), str(out)]
    command = ([sys.executable, *script] if processes == 1 else
               [sys.executable, "-m", "torch.distributed.run", "--standalone",
                f"--nproc_per_node={processes}", *script])
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "APTBOOK_STORE": str(store)}
    finished = subprocess.run(command, env=environment, capture_output=True, text=True,
                              timeout=900, check=False)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    return dict(np.load(out))


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """One process: the model pre-trained, its readers trained, its block counts made."""
    root = tmp_path_factory.mktemp("single")
    pretrained = run("pretrain", root / "store", root / "pretrain.npz", 1)
    counted = run("count", root / "store", root / "count.npz", 1)
    return root, pretrained, counted


def test_counting_pass_under_two_processes_gives_the_same_tables(single, tmp_path):
    """Each process runs the trunk over whole trunk batches of W_test (the batches one process
    runs) and the integer counts are summed, so every table is equal, not close. The model and
    its trained readers come from the single process's store, its block counts removed."""
    root, _, counted = single
    store = tmp_path / "store"
    shutil.copytree(root / "store", store)
    removed = [p for p in store.rglob("block-counts-*") if p.is_dir()]
    assert removed, "the single process's store holds its block counts"
    for folder in removed:
        shutil.rmtree(folder)
    shared = run("count", store, tmp_path / "count.npz", 2)
    assert sorted(shared) == sorted(counted)
    assert sum(int(counted[name].sum()) for name in counted if name.endswith("-total")) > 0
    for name in counted:
        np.testing.assert_array_equal(shared[name], counted[name], err_msg=name)


def test_pretraining_under_two_processes_gives_the_same_heldout_tables(single, tmp_path):
    """Two processes each take half of the global batch of `batch_size` samples, the same
    samples as one process's batch (accelerate's seeded sampler, its batches dealt out in turn),
    masked by the same draws (`GlobalBatchCollator` draws the whole batch's masks and keeps its
    rows), and each one's loss is summed over its positions and divided by the modified
    positions of the whole batch, so the averaged gradient is one process's gradient.

    What stays different, and why the weights are compared as close, not equal: the gradient is
    summed in another order (each process's half, then gloo's all-reduce), which moves the last
    bits of fp32 weights; the held-out count tables, argmaxes of those weights, are equal.
    Dropout is 0 here: with dropout each process draws the dropout masks of its own rows from
    its own generator, so they cannot be those of one process, and the runs are different
    samples of the same recipe. A
    last global batch smaller than `batch_size` (W_S not a multiple of it) is also dealt out
    differently (accelerate evens the shares); W_S = 64 is four full batches of 16."""
    _, alone, _ = single
    shared = run("pretrain", tmp_path / "store", tmp_path / "pretrain.npz", 2)
    np.testing.assert_array_equal(shared["total"], alone["total"])
    assert alone["total"].sum() > 0
    np.testing.assert_array_equal(shared["correct"], alone["correct"])
    weights = [name for name in alone if name.startswith("weight-")]
    assert weights and sorted(weights) == sorted(n for n in shared if n.startswith("weight-"))
    for name in weights:
        np.testing.assert_allclose(shared[name], alone[name], rtol=1e-4, atol=1e-5, err_msg=name)


if __name__ == "__main__":
    work(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
