"""InceptionTime (Ismail Fawaz et al. 2020) over a window of bars, sized for a CPU.

Each inception module: a 1x1 bottleneck convolution (skipped when the input has a single
channel), three parallel convolutions of different lengths on the bottleneck (odd kernels
9/19/39 instead of the paper's 10/20/40, so that "same" padding is symmetric), and a
max-pool(3) -> 1x1 convolution branch on the module's input; the four outputs are
concatenated, batch-normalised and passed through a ReLU. A residual shortcut (1x1 conv +
batch norm) joins every third module's output to the input three modules earlier. Global
average pooling over time and a linear layer give the logits.

Unlike the TCN, the convolutions are not causal inside the window: every bar in the window
sees every other bar. That leaks nothing, because the window itself ends at the decision
bar t; it only means there is no per-step representation with a causal meaning.

CPU sizing: the paper uses 6 modules of 32 filters per branch (128 channels, ~480k
parameters with 40 features). The default here is 3 modules (one residual block) of 16
filters (64 channels, ~60k parameters): on 2 CPU cores a training step cost about 2.7x less
than 6 modules of 16, and less than 6 modules of 8, whose cost is dominated by per-module
overhead (batch norm, max-pool, concatenation) rather than by the convolutions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn

from factory.errors import FactoryError
from factory.models.neural._checks import (
    check_dropout,
    check_int,
    check_int_list,
    check_sequence_shape,
)


class InceptionModule(nn.Module):
    """Bottleneck -> parallel convolutions + max-pool branch -> concat -> BN -> ReLU."""

    def __init__(self, c_in: int, n_filters: int, bottleneck: int,
                 kernel_sizes: tuple[int, ...]) -> None:
        super().__init__()
        # convolutions feeding a batch norm carry no bias: BN removes it (and its gradient)
        self.bottleneck = (nn.Conv1d(c_in, bottleneck, 1, bias=False) if c_in > 1
                           else nn.Identity())
        width = bottleneck if c_in > 1 else c_in
        self.convs = nn.ModuleList(
            nn.Conv1d(width, n_filters, k, padding=k // 2, bias=False) for k in kernel_sizes
        )
        self.pool_branch = nn.Sequential(nn.MaxPool1d(3, stride=1, padding=1),
                                         nn.Conv1d(c_in, n_filters, 1, bias=False))
        self.out = nn.Sequential(nn.BatchNorm1d(n_filters * (len(kernel_sizes) + 1)), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.bottleneck(x)
        branches = [conv(z) for conv in self.convs] + [self.pool_branch(x)]
        return self.out(torch.cat(branches, dim=1))


class InceptionTimeNet(nn.Module):
    """Inception modules with a residual shortcut every third module, GAP, linear head.

    Parameters
    ----------
    input_shape : (seq_len, n_features)
    n_classes : number of logits.
    n_filters : output channels of each branch (module width = n_filters * (branches)).
    bottleneck : channels of the 1x1 bottleneck in front of the long convolutions.
    depth : number of inception modules (the paper: 6); a shortcut spans each 3.
    kernel_sizes : odd lengths of the parallel convolutions.
    dropout : dropout before the head.
    """

    input_kind: ClassVar[str] = "sequence"

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_classes: int = 3,
        *,
        n_filters: int = 16,
        bottleneck: int = 16,
        depth: int = 3,
        kernel_sizes: Sequence[int] = (9, 19, 39),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        name = "InceptionTimeNet"
        check_sequence_shape(name, input_shape, n_classes)
        for key, value, example in (("n_filters", n_filters, 16),
                                    ("bottleneck", bottleneck, 16), ("depth", depth, 3)):
            check_int(name, key, value, example)
        check_dropout(name, dropout)
        kernels = check_int_list(name, "kernel_sizes", kernel_sizes, "[9,19,39]")
        if any(k % 2 == 0 for k in kernels):
            raise FactoryError(
                f"{name}: `model.network.kernel_sizes` must be a non-empty list of odd "
                f"positive ints (odd keeps 'same' padding symmetric), got {list(kernel_sizes)} "
                f"(try `model.network.kernel_sizes=[9,19,39]`)"
            )
        seq_len, n_features = (int(s) for s in input_shape)
        self.input_shape = (seq_len, n_features)
        width = n_filters * (len(kernels) + 1)
        self.blocks = nn.ModuleList(
            InceptionModule(n_features if i == 0 else width, n_filters, bottleneck, kernels)
            for i in range(depth)
        )
        # shortcut j joins the input of module 3j to the output of module 3j + 2
        self.shortcuts = nn.ModuleList(
            nn.Sequential(nn.Conv1d(n_features if j == 0 else width, width, 1, bias=False),
                          nn.BatchNorm1d(width))
            for j in range(depth // 3)
        )
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, n_classes) for windows (B, seq_len, n_features)."""
        h = x.transpose(1, 2)
        residual = h
        for i, module in enumerate(self.blocks):
            h = module(h)
            if i % 3 == 2:
                h = torch.relu(h + self.shortcuts[i // 3](residual))
                residual = h
        return self.head(self.drop(h.mean(dim=2)))
