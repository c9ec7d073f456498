"""The `torch_compile` knob: on for the gpu and paper profiles, off on the CPU ones; it reaches the
Trainer's arguments, and a reader head compiled in place reads as the eager one and keeps the
names of its parameters (so stored heads load into it). Compiling on the CPU is slow; one small
head is compiled here, the GPU runs compile the rest."""
import torch

from aptutils.core.params import resolve
from aptutils.models.bert import BertRecipe, bert_config
from aptutils.readout.probes import load_trained_state, new_probe_heads, trained_state
from aptutils.readout.reading import ReadersRecipe, compiled
from aptutils.training.pretrain import PretrainRecipe, training_arguments


def test_the_gpu_profiles_compile_and_the_cpu_ones_do_not():
    assert {p: resolve({"profile": p}).torch_compile for p in ("smoke", "cpu", "gpu", "paper")} == \
        {"smoke": False, "cpu": False, "gpu": True, "paper": True}


def test_the_trainer_compiles_when_asked(tmp_path):
    for wanted in (True, False):
        settings = resolve({"profile": "smoke", "torch_compile": wanted})
        assert training_arguments(settings.recipe(PretrainRecipe), tmp_path, 64).torch_compile is wanted


def test_a_compiled_head_reads_as_the_eager_one_and_keeps_its_names():
    settings = resolve({"profile": "smoke", "hidden_size": 16, "num_layers": 1})
    heads = new_probe_heads(bert_config(settings.recipe(BertRecipe), 50, 0), 2, seed=0).eval()
    features = torch.randn(7, 16, generator=torch.Generator().manual_seed(0))
    eager = [head(features) for head in heads]
    names = list(heads.state_dict())
    compiled(settings.recipe(ReadersRecipe), *heads)  # torch_compile off: nothing happens
    assert all(head._compiled_call_impl is None for head in heads)
    compiled(resolve({"profile": "smoke", "torch_compile": True}).recipe(ReadersRecipe), heads[0])
    assert heads[0]._compiled_call_impl is not None
    torch.testing.assert_close(heads[0](features), eager[0], rtol=1e-4, atol=1e-5)
    assert list(heads.state_dict()) == names
    fresh = new_probe_heads(bert_config(settings.recipe(BertRecipe), 50, 0), 2, seed=1)
    load_trained_state(fresh, trained_state(heads))
    torch.testing.assert_close(fresh[0](features), eager[0], rtol=1e-4, atol=1e-5)
