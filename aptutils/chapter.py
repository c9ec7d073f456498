"""Everything a chapter calls, from one import (as d2l's chapters take theirs).

A chapter opens with `from aptutils.chapter import ...` naming what it uses: the chapter's report
(`chN_*`), its figures, the modules of the layers it calls, the recipes it hands them
(`settings.recipe(SeriesRecipe)`), and `configure` / `open_blocks`, which resolve its
parameters once. Sits above every layer.
"""
from IPython.display import Markdown

from .analysis import apt, baselines, confidence, filters, scan, structure
from .analysis.clusters import ClusterRule
from .analysis.power import power_phrase
from .core import counts, exports, verdicts
from .core.kinds import reading_name
from .data import images, tasks
from .data.images import ImageRecipe
from .data.masking import special_token_ids
from .data.tasks import TaskRecipe
from .plotting import figures, image_figures, power_figures, task_figures
from .plotting.explorer import interactive_table
from .readout import layers
from .readout.layers import LayerHeadsRecipe
from .reports import (
    ch1_pretraining,
    ch2_apt,
    ch3_symmetry_breaking,
    ch4_clustering,
    ch5_finetuning,
    ch6_confidence,
    ch7_image_analogy,
    cluster_power,
    explorer,
)
from .reports.ch2_apt import checkpoint_sentence
from .reports.opening import configure, open_blocks, run_data
from .training import cnn, finetune
from .training.cnn import CNNRecipe
from .training.equal_steps import equal_steps_series
from .training.finetune import FinetuneRecipe
from .training.pretrain import SeriesRecipe, pretrain_series
from .training.subject import SubjectRecipe

__all__ = [
    "CNNRecipe", "ClusterRule", "FinetuneRecipe", "ImageRecipe", "LayerHeadsRecipe", "Markdown",
    "SeriesRecipe", "SubjectRecipe", "TaskRecipe", "apt", "baselines", "ch1_pretraining",
    "ch2_apt", "ch3_symmetry_breaking", "ch4_clustering", "ch5_finetuning", "ch6_confidence",
    "ch7_image_analogy", "checkpoint_sentence", "cluster_power", "cnn", "configure", "confidence",
    "counts", "equal_steps_series", "explorer", "exports", "figures", "filters", "finetune",
    "image_figures", "images", "interactive_table", "layers", "open_blocks", "power_figures",
    "power_phrase", "pretrain_series", "reading_name", "run_data", "scan", "special_token_ids",
    "structure", "task_figures", "tasks", "verdicts",
]
