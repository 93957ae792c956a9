"""Cross-validated training of R-GenIMA (and its ablations) with Hugging Face Accelerate.

Training writes ``RUNDIR/folds.csv``, ``RUNDIR/backbone/`` and ``RUNDIR/models/<name>/``
(``training.json``, ``predictions.csv`` and one ``fold_<k>/`` per outer fold, whose
``pretrained/`` folder reloads with ``RGenIMAForStaging.from_pretrained``). Their names
belong to :mod:`rgenima.run` (:class:`~rgenima.run.Run`, :class:`~rgenima.run.FoldDir`);
the layout is drawn in the book's Architecture page.

A fold with ``done.json`` is never retrained; a fold killed mid-training resumes from
its last epoch checkpoint. On CPU, the same seed gives the same predictions; under
``torchrun --nproc_per_node N`` each rank trains on its shard of every batch (DDP, gloo
on CPU, NCCL on GPU) and all ranks end with identical weights.

Submodules, each with one job:

- :mod:`~rgenima.train.profile`: training profiles (model size, optimisation) and the
  folder name of a configuration.
- :mod:`~rgenima.train.splits`: the outer folds, the inner validation split, class weights.
- :mod:`~rgenima.train.files`: tensors and optimiser state in safetensors, predictions tables.
- :mod:`~rgenima.train.construction`: the default backbone, the model of a profile, the
  genetic prompt's initial attention bias.
- :mod:`~rgenima.train.runtime`: the accelerator, determinism, weight digests across ranks.
- :mod:`~rgenima.train.fold_loop`: training and predicting one outer fold.
- :mod:`~rgenima.train.configuration`: one configuration across the folds.
- :mod:`~rgenima.train.study_step`: the study's configurations, baselines and references.
"""

from rgenima.model.inputs import batch_tensors, model_sequences, predict_proba
from rgenima.train.configuration import load_training_data, tokenizer_and_sequences, train_configuration
from rgenima.train.construction import (
    build_model,
    ensure_default_backbone,
    model_config,
    prompt_length,
    save_pretrained_atomic,
    snp_scan_bias,
)
from rgenima.train.files import PROBA_COLUMNS, load_optimizer, save_optimizer, write_predictions
from rgenima.train.fold_loop import (
    FoldResult,
    WeightAverage,
    beats_by_one_standard_error,
    learning_rate_at,
    train_fold,
)
from rgenima.train.profile import PROFILES, WARM_START_TRAINABLE, TrainProfile, configuration_name, get_profile
from rgenima.train.runtime import gather_weight_digests, make_accelerator, set_determinism, weight_digest
from rgenima.train.splits import class_weights, inner_split, load_or_make_folds, make_folds
from rgenima.train.study_step import (
    baseline_features,
    run_baselines,
    run_references,
    study_configurations,
    train_study,
)

#: The batch helper's former name, kept for scripts that import it from here.
_tensors = batch_tensors

__all__ = [
    "PROBA_COLUMNS",
    "PROFILES",
    "WARM_START_TRAINABLE",
    "FoldResult",
    "TrainProfile",
    "WeightAverage",
    "baseline_features",
    "beats_by_one_standard_error",
    "build_model",
    "class_weights",
    "configuration_name",
    "ensure_default_backbone",
    "gather_weight_digests",
    "get_profile",
    "inner_split",
    "learning_rate_at",
    "load_optimizer",
    "load_or_make_folds",
    "load_training_data",
    "make_accelerator",
    "make_folds",
    "model_config",
    "model_sequences",
    "predict_proba",
    "prompt_length",
    "run_baselines",
    "run_references",
    "save_optimizer",
    "save_pretrained_atomic",
    "set_determinism",
    "snp_scan_bias",
    "study_configurations",
    "tokenizer_and_sequences",
    "train_configuration",
    "train_fold",
    "train_study",
    "weight_digest",
    "write_predictions",
]
