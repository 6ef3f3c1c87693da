"""1-D ResNet (Wang, Yan & Oates 2017) over a multi-resolution ladder of bar windows.

This is the multi-resolution network (``input_kind = "multires"``). Its input is
``(B, T, L, C)``: for each of T timeframes of a ladder (e.g. 5min, 15min, 1h) the last L
completed bars with C channels each, the most recent bar last.

* **Shared trunk.** The T timeframes are folded into the batch (``B * T`` windows of
  ``(L, C)``) and pass through one residual trunk: residual blocks of three convolutions
  (kernels 7/5/3, the paper's 8 made odd for symmetric "same" padding), each followed by
  batch norm and a ReLU, with a 1x1-conv + BN shortcut where the width changes (BN only
  where it does not). Sharing the weights means a pattern learned on 5-minute bars is
  recognised on hourly bars too, at a third of the parameters of T separate trunks.
* **Per-timeframe summary.** Global average pooling over the L steps gives one vector per
  timeframe.
* **Fusion by concatenation.** The T pooled vectors are concatenated in ladder order, so
  the head knows which timeframe each came from by its position (no timeframe embedding is
  needed); layer norm, dropout and one linear layer give the logits.

Batch norm statistics are pooled over all timeframes of the batch; inputs should therefore be
scaled per channel by the adapter (as the multires adapter does), not left in price units.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn

from factory.errors import FactoryError
from factory.models.neural._checks import check_dropout, check_int_list

KERNELS = (7, 5, 3)


def conv_bn(c_in: int, c_out: int, kernel_size: int) -> nn.Sequential:
    """Same-padded Conv1d (no bias: the batch norm removes it) followed by BatchNorm1d."""
    return nn.Sequential(nn.Conv1d(c_in, c_out, kernel_size, padding=kernel_size // 2,
                                   bias=False), nn.BatchNorm1d(c_out))


class ResidualBlock(nn.Module):
    """conv7-BN-ReLU, conv5-BN-ReLU, conv3-BN, + shortcut, ReLU."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn(c_in, c_out, KERNELS[0]), nn.ReLU(),
            conv_bn(c_out, c_out, KERNELS[1]), nn.ReLU(),
            conv_bn(c_out, c_out, KERNELS[2]),
        )
        self.shortcut = conv_bn(c_in, c_out, 1) if c_in != c_out else nn.BatchNorm1d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class ResNet1DNet(nn.Module):
    """Shared residual trunk per timeframe -> GAP -> concatenation over timeframes -> head.

    Parameters
    ----------
    input_shape : (n_timeframes, seq_len, n_channels)
    n_classes : number of logits.
    channels : width of each residual block (the paper: 64, 128, 128).
    dropout : dropout before the head.
    """

    input_kind: ClassVar[str] = "multires"

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_classes: int = 3,
        *,
        channels: Sequence[int] = (16, 32, 32),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        shape = tuple(input_shape)
        if len(shape) != 3 or any(int(s) < 1 for s in shape):
            raise FactoryError(
                f"ResNet1DNet: input_shape must be (n_timeframes, seq_len, n_channels) with "
                f"positive sizes, got {shape}; this network needs `adapter=multires`"
            )
        if int(n_classes) < 2:
            raise FactoryError(f"ResNet1DNet: n_classes must be >= 2, got {n_classes}")
        widths = check_int_list("ResNet1DNet", "channels", channels, "[16,32,32]")
        check_dropout("ResNet1DNet", dropout)
        n_timeframes, seq_len, n_channels = (int(s) for s in shape)
        self.input_shape = (n_timeframes, seq_len, n_channels)
        sizes = [n_channels, *widths]
        self.trunk = nn.Sequential(*[ResidualBlock(sizes[i], sizes[i + 1])
                                     for i in range(len(widths))])
        fused = n_timeframes * sizes[-1]
        self.norm = nn.LayerNorm(fused)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(fused, n_classes)

    def timeframe_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled trunk output per timeframe, (B, T, channels[-1])."""
        b, t, length, c = x.shape
        h = self.trunk(x.reshape(b * t, length, c).transpose(1, 2))  # (B*T, H, L)
        return h.mean(dim=2).reshape(b, t, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, n_classes) for ladders ``x`` of shape (B, T, seq_len, n_channels)."""
        fused = self.timeframe_features(x).flatten(1)  # timeframe order = ladder order
        return self.head(self.drop(self.norm(fused)))
