"""Transformer encoder over a window of bars (pre-LN, ``input_kind = "sequence"``).

Each bar's feature vector is projected to ``d_model``, a positional encoding is added
(fixed sinusoidal, or learned), and a stack of pre-LN encoder layers follows (layer norm
before attention and before the feed-forward block, then a final norm: it trains stably
without warm-up, which matters with the short CPU schedules used here).

Two heads:

* ``head="last"``: a causal attention mask (step s attends to steps <= s) and the logits
  from the last token, the decision bar t. :meth:`TransformerNet.features` is then causal,
  like the TCN's, and the tests check it.
* ``head="pooled"``: no mask; the mean over all steps feeds the head. Every step sees the
  whole window, which is still only the past of t.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn

from factory.errors import FactoryError
from factory.models.neural._checks import check_dropout, check_int, check_sequence_shape

HEADS = ("last", "pooled")
POSITIONALS = ("sinusoidal", "learned")


def sinusoidal_encoding(seq_len: int, d_model: int) -> torch.Tensor:
    """The (seq_len, d_model) sine/cosine table of Vaswani et al. (2017)."""
    position = torch.arange(seq_len, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32)
                     * (-math.log(10000.0) / d_model))
    table = torch.zeros(seq_len, d_model)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: d_model // 2])
    return table


class PreLNBlock(nn.Module):
    """x + drop(attn(LN(x))); then x + drop(FF(LN(x))).

    Dropout sits on the two residual branches only (as GPT-2's ``resid_pdrop``). Attention
    runs through ``scaled_dot_product_attention`` (a fused kernel on CPU and GPU) without
    dropout on the attention weights, and the feed-forward block has none inside: on CPU,
    drawing dropout masks was the largest single cost of a training step (a mask over every
    (query, key) pair alone took a quarter of a step in ``nn.TransformerEncoderLayer``).
    """

    def __init__(self, d_model: int, n_heads: int, dim_feedforward: int,
                 dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, dim_feedforward), nn.GELU(),
                                nn.Linear(dim_feedforward, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, causal: bool) -> torch.Tensor:
        b, length, d = x.shape
        qkv = self.qkv(self.norm1(x)).view(b, length, 3, self.n_heads, d // self.n_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, L, head_dim)
        attn = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
        x = x + self.drop(self.proj(attn.transpose(1, 2).reshape(b, length, d)))
        return x + self.drop(self.ff(self.norm2(x)))


class TransformerNet(nn.Module):
    """Input projection + positional encoding -> pre-LN encoder -> last-token or mean head.

    Parameters
    ----------
    input_shape : (seq_len, n_features)
    n_classes : number of logits.
    d_model : token width; must be divisible by ``n_heads``.
    n_heads : attention heads per layer.
    n_layers : encoder layers.
    dim_feedforward : hidden width of each layer's feed-forward block.
    dropout : on each residual branch, after the positional encoding, before the head.
    head : "last" (causal mask, last token) or "pooled" (no mask, mean over steps).
    positional : "sinusoidal" (fixed) or "learned" (one trained vector per step).
    """

    input_kind: ClassVar[str] = "sequence"

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_classes: int = 3,
        *,
        d_model: int = 64,
        n_heads: int = 4,
        n_layers: int = 2,
        dim_feedforward: int = 128,
        dropout: float = 0.1,
        head: str = "last",
        positional: str = "sinusoidal",
    ) -> None:
        super().__init__()
        name = "TransformerNet"
        check_sequence_shape(name, input_shape, n_classes)
        for key, value, example in (("d_model", d_model, 64), ("n_heads", n_heads, 4),
                                    ("n_layers", n_layers, 2),
                                    ("dim_feedforward", dim_feedforward, 128)):
            check_int(name, key, value, example)
        check_dropout(name, dropout)
        if d_model % n_heads:
            fewer = max(h for h in range(1, n_heads) if d_model % h == 0)
            raise FactoryError(
                f"{name}: `model.network.d_model`={d_model} must be divisible by "
                f"`model.network.n_heads`={n_heads} (try `model.network.n_heads={fewer}` or "
                f"`model.network.d_model={-(-d_model // n_heads) * n_heads}`)"
            )
        if head not in HEADS:
            raise FactoryError(f"{name}: `model.network.head` must be one of {HEADS}, got "
                               f"{head!r} (try `model.network.head=last`)")
        if positional not in POSITIONALS:
            raise FactoryError(f"{name}: `model.network.positional` must be one of "
                               f"{POSITIONALS}, got {positional!r}")
        seq_len, n_features = (int(s) for s in input_shape)
        self.input_shape = (seq_len, n_features)
        self.head_kind = head
        self.project = nn.Linear(n_features, d_model)
        if positional == "learned":
            self.position = nn.Parameter(0.02 * torch.randn(seq_len, d_model))
        else:
            self.register_buffer("position", sinusoidal_encoding(seq_len, d_model),
                                 persistent=False)
        self.embed_drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(PreLNBlock(d_model, n_heads, dim_feedforward, dropout)
                                    for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)  # pre-LN stacks end with a norm
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(d_model, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Per-step representation (B, seq_len, d_model); causal when ``head="last"``."""
        if x.shape[1] != self.input_shape[0]:
            raise FactoryError(f"TransformerNet: built for seq_len={self.input_shape[0]}, "
                               f"got windows of {x.shape[1]} steps")
        h = self.embed_drop(self.project(x) + self.position)
        for layer in self.layers:
            h = layer(h, causal=self.head_kind == "last")
        return self.norm(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, n_classes): from the last token, or the mean over steps."""
        h = self.features(x)
        summary = h[:, -1] if self.head_kind == "last" else h.mean(dim=1)
        return self.head(self.drop(summary))
