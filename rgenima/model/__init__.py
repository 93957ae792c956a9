"""R-GenIMA model components (RiT, backbone, projector) and baselines.

:mod:`~rgenima.model.rgenima` re-exports the model's public names from
:mod:`~rgenima.model.configuration_rgenima` (config), :mod:`~rgenima.model.modeling_rgenima`
(the model), :mod:`~rgenima.model.key_bias_attention` (attention kernels of the genetic
prompt) and :mod:`~rgenima.model.language_model` (the language model and tokenizer of a
saved model); :mod:`~rgenima.model.rit` is the ROI image transformer,
:mod:`~rgenima.model.backbone` the language-model backbone, :mod:`~rgenima.model.inputs`
the model's input sequences and :mod:`~rgenima.model.baselines` the baseline classifiers.
"""
