"""Temporal convolutional network (Bai, Kolter & Koltun 2018) over a window of bars.

Residual blocks of two dilated **causal** 1-D convolutions (padding on the left only, so
the output at step s sees inputs at steps <= s), with dilations 1, 2, 4, ... per block. The
head reads the last step, the decision bar t. :meth:`TCNNet.features` returns the per-step
representation, which the tests use to prove causality.

Normalisation is weight norm, as in the paper, rather than batch norm: batch statistics are
pooled over all time steps, so in training mode a step's output would depend on later steps
of the window; weight norm acts on the kernels only and keeps every step causal in train and
eval mode alike.

Receptive field: ``1 + 2 * (kernel_size - 1) * (2**n_levels - 1)`` steps. With
``n_levels=None`` the network takes the fewest levels whose field covers ``seq_len``
(4 levels at kernel 3 cover 61 steps), so it follows ``adapter.seq_len``.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from factory.models.neural._checks import check_dropout, check_int, check_sequence_shape


def receptive_field(kernel_size: int, n_levels: int) -> int:
    """Steps seen by the last output of ``n_levels`` blocks of two dilated convolutions."""
    return 1 + 2 * (kernel_size - 1) * (2**n_levels - 1)


class CausalConv1d(nn.Module):
    """Weight-normalised Conv1d on (B, C, L) padded on the left by ``(k - 1) * dilation``."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        self.left_pad = (kernel_size - 1) * dilation
        self.conv = weight_norm(nn.Conv1d(c_in, c_out, kernel_size, dilation=dilation))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(nn.functional.pad(x, (self.left_pad, 0)))


class TemporalBlock(nn.Module):
    """Two causal convolutions with ReLU and dropout, plus a (1x1-projected) residual."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, dilation: int,
                 dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            CausalConv1d(c_in, c_out, kernel_size, dilation), nn.ReLU(), nn.Dropout(dropout),
            CausalConv1d(c_out, c_out, kernel_size, dilation), nn.ReLU(), nn.Dropout(dropout),
        )
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.net(x) + self.skip(x))


class TCNNet(nn.Module):
    """Stack of dilated causal residual blocks; head on the last time step.

    Parameters
    ----------
    input_shape : (seq_len, n_features)
    n_classes : number of logits.
    channels : width of every block.
    kernel_size : taps per convolution (>= 2, else the receptive field never grows).
    n_levels : residual blocks (dilation 2**i in block i); None = fewest covering seq_len.
    dropout : dropout after each convolution and before the head.
    """

    input_kind: ClassVar[str] = "sequence"

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_classes: int = 3,
        *,
        channels: int = 48,
        kernel_size: int = 3,
        n_levels: int | None = None,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        check_sequence_shape("TCNNet", input_shape, n_classes)
        check_int("TCNNet", "channels", channels, 48)
        check_int("TCNNet", "kernel_size", kernel_size, 3, minimum=2)  # 1: the field never grows
        check_dropout("TCNNet", dropout)
        seq_len, n_features = (int(s) for s in input_shape)
        if n_levels is None:
            n_levels = 1
            while receptive_field(kernel_size, n_levels) < seq_len:
                n_levels += 1
        check_int("TCNNet", "n_levels", n_levels, 4)
        self.input_shape = (seq_len, n_features)
        self.n_levels = int(n_levels)
        self.receptive_field = receptive_field(int(kernel_size), self.n_levels)
        widths = [n_features] + [int(channels)] * self.n_levels
        self.blocks = nn.Sequential(*[
            TemporalBlock(widths[i], widths[i + 1], int(kernel_size), 2**i, float(dropout))
            for i in range(self.n_levels)
        ])
        self.drop = nn.Dropout(float(dropout))
        self.head = nn.Linear(int(channels), int(n_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Per-step representation (B, seq_len, channels); step s depends on steps <= s only."""
        return self.blocks(x.transpose(1, 2)).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, n_classes) from the last step's representation."""
        return self.head(self.drop(self.features(x)[:, -1]))
