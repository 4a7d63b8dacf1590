"""Inspect a model: the book's measurements, pointed at a reader's own transformer.

``inspect_model`` takes a float32 ``transformers`` causal language model of the
GPT-2, Llama, Mistral, Qwen2 or GPT-NeoX family and token ids, and measures what the
trained-model chapters measure in stories260K:

* ``attention`` (arrays layers × heads): ``logit_std``, the within-row standard
  deviation of the scaled logits, computed from the query and key vectors attention
  itself receives (after rotary embeddings, with the model's own scaling);
  ``logit_std_pooled``; ``max_logit`` and ``largest_logit`` against float16's exp
  threshold ``ln 65504``, with ``fraction_rows_above_fp16_exp_limit``;
  ``normalized_entropy`` (1 uniform, 0 one-hot) and ``first_token_weight`` with their
  uniform references;
* ``residual`` (arrays over depth 0…layers): ``rms``, ``max_abs`` and
  ``token_max_over_median``, Sun et al.'s massive-activation ratio, with the
  (sequence, position, channel) where each maximum sits;
* ``output_logits``: the spread over the vocabulary, ``max_abs``, ``mean_log_z``;
* ``loss``: next-token loss in float32, bfloat16 and float16, paired per sequence,
  with standard errors;
* ``quantization``: per weight matrix the relative error of int8 absmax quantization
  per tensor, per channel and per group of 128.

``write_reports`` writes ``report.json`` and a self-contained ``report.html``;
``python -m numscale.inspect MODEL`` does both from the command line.
"""

from numscale.inspect.inspection import REPORT_VERSION, inspect_model
from numscale.inspect.recording import SUPPORTED, UnsupportedModel
from numscale.inspect.report import to_json, write_reports

__all__ = [
    "REPORT_VERSION",
    "SUPPORTED",
    "UnsupportedModel",
    "inspect_model",
    "to_json",
    "write_reports",
]
