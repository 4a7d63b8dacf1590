"""The next-token loss of a language model: per position, per story, and its mean.

Position ``t``'s logits predict token ``t+1``; only targets the mask marks count.
Shapes: ``logits`` (B, T, vocab) in any float format; ``tokens`` (B, T) int64;
``mask`` (B, T) bool, the target mask of :func:`numscale.models.llama.encode_stories`
(False at the BOS token at position 0, True on the story's other tokens, False on the
padding). Every next-token loss of the Llama model on stories goes through
:func:`token_nll` (two training losses of toy models, in ``logit_caps.finetune`` and
``residual.gradient_profile``, call ``torch.nn.functional.cross_entropy`` directly):

* :func:`token_nll` the (B, T−1) loss of every prediction (differentiable);
* :func:`story_nll` its sum over each story's targets, and the token counts;
* :func:`story_losses` the same for a model run on the stories, batch by batch;
* :func:`next_token_loss` the mean per token and its standard error over stories;
* :func:`mean_nll` the differentiable mean over the targets of a batch (a training
  loss).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

from numscale import stats
from numscale.checks import positive_int

#: The formats the log-softmax may run in.
LOSS_DTYPES = (torch.float32, torch.float64)


def _as_tensor(value: object, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(value)}")


def token_nll(
    logits: object, tokens: object, *, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """(B, T−1) negative log-likelihood (nats) of token ``t+1`` under position ``t``'s
    logits: ``−log softmax(logits[:, t])[tokens[:, t+1]]``.

    ``logits`` (B, T, vocab) and ``tokens`` (B, T), torch tensors or NumPy arrays. The
    logits are converted to ``dtype`` (float32 or float64) before the log-softmax,
    whatever format the model ran in. Differentiable through ``logits``.
    """
    z = _as_tensor(logits, "logits")
    ids = _as_tensor(tokens, "tokens")
    if dtype not in LOSS_DTYPES:
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    if not z.dtype.is_floating_point or z.ndim != 3:
        raise ValueError(f"logits must be floats of shape (B, T, vocab), got {z.shape}")
    if ids.dtype != torch.long or tuple(ids.shape) != tuple(z.shape[:2]):
        raise ValueError(
            f"tokens must be int64 of shape {tuple(z.shape[:2])}, "
            f"got {ids.dtype} {tuple(ids.shape)}"
        )
    logp = torch.log_softmax(z[:, :-1].to(dtype), dim=-1)
    return -logp.gather(-1, ids[:, 1:, None])[..., 0]


def story_nll(
    logits: object,
    tokens: object,
    mask: object,
    *,
    dtype: torch.dtype = torch.float32,
) -> tuple[np.ndarray, np.ndarray]:
    """Summed next-token loss (nats) of each story, (B,) float64, and its number of
    predicted tokens, (B,) int64: :func:`token_nll` (log-softmax in ``dtype``) summed
    over the targets ``mask[:, 1:]``, in ``dtype``. A story whose logits overflowed
    keeps its inf/NaN sum: callers count it."""
    nll = token_nll(logits, tokens, dtype=dtype)
    target = _as_tensor(mask, "mask")
    if target.dtype != torch.bool or target.shape != (nll.shape[0], nll.shape[1] + 1):
        raise ValueError(
            f"mask must be bool of the tokens' shape, got {target.dtype} "
            f"{tuple(target.shape)}"
        )
    target = target[:, 1:]
    sums = torch.where(target, nll, torch.zeros((), dtype=nll.dtype)).sum(1)
    return sums.detach().double().numpy(), target.sum(1).numpy()


def check_mask(mask: object, name: str = "mask") -> torch.Tensor:
    """``mask`` as a (B, T) bool target mask, as
    :func:`numscale.models.llama.encode_stories` returns it: False at position 0 (BOS,
    never predicted), then True on a prefix of positions 1… (the story's tokens) and
    False on the padding."""
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError(f"{name} must be a bool tensor, got {mask.dtype}")
    if mask.ndim != 2 or mask.numel() == 0:
        raise ValueError(
            f"{name} must have shape (B, T) and not be empty, got {tuple(mask.shape)}"
        )
    if bool(mask[:, 0].any()):
        raise ValueError(f"{name} must be False at position 0 (BOS is never a target)")
    if bool((mask[:, 2:] & ~mask[:, 1:-1]).any()):
        raise ValueError(
            f"{name} must be True on a prefix of positions 1, 2, ... of each row"
        )
    return mask


def real_tokens(mask: torch.Tensor) -> torch.Tensor:
    """(B, T) bool: True at every real token, the BOS at position 0 included, of a
    target ``mask`` (see :func:`check_mask`)."""
    real = check_mask(mask).clone()
    real[:, 0] = True
    return real


def check_tokens(tokens: object, mask: torch.Tensor) -> torch.Tensor:
    """``tokens`` as a (B, T) int64 tensor of the target ``mask``'s shape, or raise
    naming the argument."""
    if not isinstance(tokens, torch.Tensor) or tokens.dtype != torch.long:
        raise TypeError("tokens must be a torch.LongTensor of shape (B, T)")
    if tokens.shape != mask.shape:
        raise ValueError(
            f"tokens {tuple(tokens.shape)} must have the mask's shape "
            f"{tuple(mask.shape)}"
        )
    return tokens


def batches(n: int, batch_size: int) -> Iterator[slice]:
    """Slices ``0:batch_size, batch_size:2*batch_size, …`` covering ``range(n)``."""
    n = positive_int(n, "n")
    batch_size = positive_int(batch_size, "batch_size")
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def trim(tokens: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop trailing columns of (B, T) ``tokens`` and ``mask`` that no story of the
    batch reaches (saves attention work): keep the longest story's targets and its
    BOS."""
    length = int(mask.sum(dim=1).max()) + 1
    return tokens[:, :length], mask[:, :length]


def story_losses(
    model: Callable[..., torch.Tensor],
    tokens: torch.Tensor,
    mask: torch.Tensor,
    *,
    batch_size: int | None = None,
    **forward_kwargs: object,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`story_nll` (log-softmax in float32) of ``model(tokens,
    **forward_kwargs)``: summed loss per story (B,) and token counts (B,).

    ``model``: a :class:`numscale.models.llama.LlamaModel` (its ``dtype`` is the format
    the forward runs in) or any callable returning (B, T, vocab) logits. With
    ``batch_size`` the stories run ``batch_size`` at a time, each batch cut to its
    longest story (:func:`trim`); without it, in one forward of the whole (B, T) batch.
    """
    mask = check_mask(mask)
    tokens = check_tokens(tokens, mask)
    if batch_size is None:
        with torch.no_grad():
            logits = model(tokens, **forward_kwargs)
        return story_nll(logits, tokens, mask)
    sums = np.zeros(mask.shape[0])
    counts = np.zeros(mask.shape[0], dtype=np.int64)
    with torch.inference_mode():
        for part in batches(mask.shape[0], batch_size):
            tok, msk = trim(tokens[part], mask[part])
            sums[part], counts[part] = story_losses(model, tok, msk, **forward_kwargs)
    return sums, counts


def next_token_loss(
    model: Callable[..., torch.Tensor],
    tokens: torch.Tensor,
    mask: torch.Tensor,
    **forward_kwargs: object,
) -> tuple[float, float]:
    """Mean next-token loss (nats per predicted token) of ``model`` on the (B, T)
    stories and its standard error: :func:`numscale.stats.ratio_mean_se` of
    :func:`story_losses` (stories the independent draws; NaN error for one story)."""
    sums, counts = story_losses(model, tokens, mask, **forward_kwargs)
    return stats.ratio_mean_se(sums, counts)


def mean_nll(logits: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor):
    """Differentiable mean of :func:`token_nll` (log-softmax in float32) over the
    targets ``mask[:, 1:]`` of the batch: Σ nll·target / Σ target, a 0-d tensor."""
    nll = token_nll(logits, tokens)
    target = mask[:, 1:].float()
    return (nll * target).sum() / target.sum()
