"""LSTM classifier over a window of the last ``seq_len`` bars (``input_kind = "sequence"``).

The recurrent stack reads the window oldest-to-newest; the hidden state after the last bar
(the decision bar t) summarises the window. It is layer-normalised (the scale of an LSTM's
hidden state drifts with sequence length and initialisation, and the head trains faster on
a normalised vector), dropped out, and mapped to three logits by one linear layer.

With ``bidirectional=True`` the backward direction's summary is its state after reading back
to the window's first bar, concatenated to the forward one. That is still causal with respect
to the decision bar (the window ends at t), only slower.

:class:`RecurrentNet` holds everything; :class:`LSTMNet` and
:class:`~factory.models.neural.gru.GRUNet` only choose the cell. The ``check_*`` validators
at the top are shared by every network of the family, so that a bad hyper-parameter fails at
construction with the same message shape, naming its ``model.network.<key>``.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from factory.models.neural._checks import check_dropout, check_int, check_sequence_shape


class RecurrentNet(nn.Module):
    """Recurrent stack -> LayerNorm(last hidden state) -> dropout -> linear head.

    Parameters
    ----------
    input_shape : (seq_len, n_features)
    n_classes : number of logits (3: down / flat / up).
    hidden_size : units per direction and layer.
    num_layers : stacked recurrent layers.
    dropout : dropout between stacked layers (when ``num_layers > 1``) and before the head.
    bidirectional : also read the window newest-to-oldest.
    """

    input_kind: ClassVar[str] = "sequence"
    rnn_cls: ClassVar[type[nn.RNNBase]] = nn.LSTM

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_classes: int = 3,
        *,
        hidden_size: int = 64,
        num_layers: int = 1,
        dropout: float = 0.1,
        bidirectional: bool = False,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        check_sequence_shape(name, input_shape, n_classes)
        check_int(name, "hidden_size", hidden_size, 64)
        check_int(name, "num_layers", num_layers, 1)
        check_dropout(name, dropout)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.n_directions = 2 if bidirectional else 1
        self.rnn = self.rnn_cls(
            input_size=self.input_shape[1], hidden_size=int(hidden_size),
            num_layers=int(num_layers), batch_first=True,
            dropout=float(dropout) if num_layers > 1 else 0.0, bidirectional=bool(bidirectional),
        )
        width = int(hidden_size) * self.n_directions
        self.norm = nn.LayerNorm(width)
        self.drop = nn.Dropout(float(dropout))
        self.head = nn.Linear(width, int(n_classes))

    def summary(self, x: torch.Tensor) -> torch.Tensor:
        """The normalised window summary (B, hidden_size * directions), before dropout."""
        _, state = self.rnn(x)
        h_n = state[0] if isinstance(state, tuple) else state  # LSTM returns (h_n, c_n)
        # h_n: (num_layers * directions, B, H); the last layer's directions are the last rows
        last = h_n[-self.n_directions:].transpose(0, 1).reshape(x.shape[0], -1)
        return self.norm(last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, n_classes) for windows ``x`` of shape (B, seq_len, n_features)."""
        return self.head(self.drop(self.summary(x)))


class LSTMNet(RecurrentNet):
    """LSTM classifier (see :class:`RecurrentNet`)."""

    rnn_cls: ClassVar[type[nn.RNNBase]] = nn.LSTM
