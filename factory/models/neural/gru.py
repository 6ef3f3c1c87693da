"""GRU classifier over a window of the last ``seq_len`` bars (``input_kind = "sequence"``).

Identical to :class:`~factory.models.neural.lstm.LSTMNet` except for the cell: a GRU has
three gates instead of four and no separate cell state, so about 25% fewer parameters and a
faster step, which often matters more than the LSTM's longer memory on 60-bar windows.
"""

from __future__ import annotations

from typing import ClassVar

from torch import nn

from factory.models.neural.lstm import RecurrentNet


class GRUNet(RecurrentNet):
    """GRU stack -> LayerNorm(last hidden state) -> dropout -> linear head.

    Same keyword parameters as :class:`~factory.models.neural.lstm.RecurrentNet`:
    ``hidden_size``, ``num_layers``, ``dropout``, ``bidirectional``.
    """

    rnn_cls: ClassVar[type[nn.RNNBase]] = nn.GRU
