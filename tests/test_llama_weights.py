"""Tests of numscale.models.llama_weights: a llama2.c model's shape (LlamaConfig) and its
arrays (LlamaWeights) check what they are given. Reading and writing them:
test_tinystories.py; drawing them at initialization: test_tinystories.py and
test_llama.py."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from numscale.models import llama, llama_weights


@pytest.fixture(scope="module")
def tiny_weights():
    return llama.init_weights(llama_weights.TINY_CONFIG, seed=0)


def test_shapes_follow_the_format(tiny_weights):
    c = llama_weights.TINY_CONFIG
    assert tiny_weights.wk.shape == (c.n_layers, c.kv_dim, c.dim) == (2, 8, 16)
    assert tiny_weights.w2.shape == (c.n_layers, c.dim, c.hidden_dim)
    assert tiny_weights.freq_cis_real.shape == (c.seq_len, c.head_size // 2)
    assert list(c.shapes()) == list(llama_weights.WEIGHT_ORDER)


def test_weights_validate_their_arrays(tiny_weights):
    arrays = tiny_weights.arrays()
    with pytest.raises(ValueError, match="wq has shape"):
        llama_weights.LlamaWeights(
            config=tiny_weights.config, **{**arrays, "wq": arrays["wq"][:1]}
        )
    with pytest.raises(TypeError, match="config"):
        llama_weights.LlamaWeights(config=None, **arrays)
    with pytest.raises(ValueError, match="rms_final holds NaN"):
        llama_weights.LlamaWeights(
            config=tiny_weights.config,
            **{**arrays, "rms_final": np.full(16, np.nan, np.float32)},
        )


def test_config_validation():
    with pytest.raises(TypeError, match="dim"):
        llama_weights.LlamaConfig(16.0, 40, 2, 4, 2, 300, 32)
    with pytest.raises(ValueError, match="even"):
        llama_weights.LlamaConfig(12, 40, 2, 4, 2, 300, 32)  # head size 3


def test_reading_a_checkpoint_does_not_import_torch():
    # the module docstring's claim: llama_weights and llama2c are NumPy only (a fresh
    # process, since this one has imported torch already)
    code = (
        "import sys\n"
        "from numscale.models import llama2c\n"
        "weights = llama2c.load('embedded').weights\n"
        "assert weights.config.n_layers == 5\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
