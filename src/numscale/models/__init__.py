"""Where the two models' weights come from, and how the models run.

* :mod:`~numscale.models.sources`: the rule every loader follows (an argument, else an
  environment variable, else the default) and what a failure means;
* :mod:`~numscale.models.registry`: hub ids, file names and sha256 of every file and
  tensor the book reads, the embedded data among them;
* :mod:`~numscale.models.safetensors_io`: a reader of ``.safetensors`` byte ranges;
* :mod:`~numscale.models.gpt2` (GPT-2's tensors) and :mod:`~numscale.models.gpt2_model`
  (its initialization, honest labels and the whole model);
* :mod:`~numscale.models.llama2c` (llama2.c's checkpoint, tokenizer and stories files,
  and the source of stories260K), :mod:`~numscale.models.llama_weights` (the model's
  shape and arrays: what a checkpoint holds), :mod:`~numscale.models.llama_tokenizer`
  (its BPE tokenizer) and :mod:`~numscale.models.llama` (the Llama model: rotary tables,
  initialization, forward, token batches of stories).

Import submodules explicitly (``from numscale.models import llama2c``); this file
imports none, so that importing one loader does not import torch.
"""
