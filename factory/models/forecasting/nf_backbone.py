"""Any allowed neuralforecast architecture as a backbone under a classification head.

The window (B, seq_len, n_features) is turned into neuralforecast's ``windows_batch`` dict
according to ``mode`` (see :mod:`~factory.models.forecasting.nf_capabilities`), the backbone's
own ``forward`` returns its "forecast" [B', horizon_out, n_series * n_out], and that tensor,
flattened per sample, is the embedding the head classifies:

- ``exog``: embedding = horizon_out * n_out (one target series; the rest are exogenous);
- ``channel_independent``: n_features * horizon_out * n_out (one block per feature, in
  feature order so the head knows which feature said what; PatchTST's own classifier also
  flattens across channels);
- ``multivariate``: n_features * horizon_out * n_out.

With ``channels`` set, the backbone sees that many learned linear mixtures of the features in
place of the features (n_features above becomes ``channels``). Architectures that patch their
input from its first bar (TimeXer) get the newest multiple of the patch length, so the bars
left out are the oldest, never the decision bar.

Why the output rather than a hooked inner layer: the output is the one representation every
architecture exposes with the same meaning, so one code path serves all of them and does not
break when neuralforecast renames internals. It is not a one-number bottleneck: ``n_out`` sets
the width of the backbone's final projection (neuralforecast's ``outputsize_multiplier``), so
the head reads a learned ``horizon_out * n_out``-wide projection of the last representation.
Nothing is forecast and no forecast loss is used; "horizon" steps are just output slots.

Input conventions: features are already standardised on the training split, so
neuralforecast's scalers (which live outside ``forward``) are not used; architectures with
per-window normalisation inside ``forward`` (RevIN in PatchTST / TSMixer, ``use_norm`` in
iTransformer / TimeMixer) keep it as a backbone option: they de-normalise their output, so
the level and scale of each window return to the embedding.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from factory.errors import FactoryError
from factory.models.forecasting import nf_capabilities as caps


def _require(ok: bool, key: str, value: Any, rule: str, example: Any) -> None:
    """Raise a FactoryError naming ``model.network.<key>`` unless ``ok``."""
    if not ok:
        raise FactoryError(f"NeuralForecastNet: `model.network.{key}` must be {rule}, got "
                           f"{value!r} (try `model.network.{key}={example}`)")


def _is_int(value: Any, minimum: int = 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _plain(value: Any) -> Any:
    """``value`` with OmegaConf containers turned into dicts and lists (neuralforecast indexes
    and saves its arguments, and the estimator writes the network config to JSON)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class NeuralForecastNet(nn.Module):
    """neuralforecast backbone -> flattened output -> LayerNorm -> MLP head -> logits.

    Parameters
    ----------
    input_shape : (seq_len, n_features); the window's last step is the decision bar.
    n_classes : number of logits (3: down / flat / up).
    architecture : a neuralforecast.models class name (any network class not in
        ``nf_capabilities.EXCLUDED``).
    mode : ``exog`` | ``channel_independent`` | ``multivariate``; None = the architecture's
        natural mode (multivariate if MULTIVARIATE, else exog if EXOGENOUS_HIST, else
        channel_independent).
    horizon_out : output steps ``h`` asked of the backbone (1..4 is plenty).
    n_out : outputs per step and series (the width of the backbone's output layer).
    hidden : width of the head's hidden layer.
    dropout : head dropout (the backbone's own dropout goes in ``backbone``).
    target_feature : column index of the series used as ``insample_y`` in ``exog`` mode (the
        others become ``hist_exog``). Feature 0 is not guaranteed to be a return, so name the
        index of the one you mean; ignored by the other modes.
    channels : feed the backbone this many learned linear mixtures of the features instead of
        the raw features (None: the raw features, the papers' setting). In ``exog`` mode the
        target series stays raw and the mixtures are the exogenous inputs. Cost scales with
        the channel count (per-variable GRNs in TFT, one backbone pass per channel when
        channel-independent), so this is the knob that makes heavy backbones CPU-sized on 40+
        features.
    backbone : keyword arguments of the neuralforecast class (hidden_size, n_heads, ...);
        unknown keys raise (neuralforecast would silently pass them to Lightning).
    """

    input_kind: ClassVar[str] = "sequence"

    def __init__(
        self,
        input_shape: tuple[int, int],
        n_classes: int = 3,
        *,
        architecture: str,
        mode: str | None = None,
        horizon_out: int = 1,
        n_out: int = 16,
        hidden: int = 64,
        dropout: float = 0.1,
        target_feature: int = 0,
        channels: int | None = None,
        backbone: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        shape = tuple(input_shape)
        if len(shape) != 2 or not all(_is_int(int(s)) for s in shape) or n_classes < 2:
            raise FactoryError(
                f"NeuralForecastNet: needs input_shape (seq_len, n_features) and n_classes >= 2, "
                f"got {shape} and {n_classes}; sequence networks need `adapter=sequence`")
        for key, value, example in (("horizon_out", horizon_out, 1), ("n_out", n_out, 16),
                                    ("hidden", hidden, 64)):
            _require(_is_int(value), key, value, "a positive int", example)
        _require(0.0 <= float(dropout) < 1.0, "dropout", dropout, "in [0, 1)", 0.1)
        _require(channels is None or _is_int(channels), "channels", channels,
                 "a positive int or null", 8)
        seq_len, n_features = (int(s) for s in shape)
        cls = caps.model_class(str(architecture))
        self.architecture, self.mode = cls.__name__, caps.check_mode(cls, mode)
        self.input_shape = (seq_len, n_features)
        if self.mode == "exog":
            target = self._check_target(target_feature, n_features)
            others = [i for i in range(n_features) if i != target]
            self.register_buffer("target_idx", torch.tensor([target]), persistent=False)
            self.register_buffer("exog_idx", torch.tensor(others, dtype=torch.long),
                                 persistent=False)
        n_inputs = n_features - 1 if self.mode == "exog" else n_features  # what may be mixed
        self.mix = nn.Linear(n_inputs, int(channels), bias=False) if channels and n_inputs else None
        width = int(channels) if self.mix is not None else n_inputs     # series after mixing
        n_series = width if self.mode == "multivariate" else 1
        backbone = _plain(dict(backbone or {}))
        self.input_len = caps.input_length(cls, seq_len, backbone)  # newest bars fed
        self.backbone = caps.build_backbone(
            cls, horizon=int(horizon_out), input_size=self.input_len, n_out=int(n_out),
            n_series=n_series, n_hist=width if self.mode == "exog" else 0, backbone=backbone)
        per_sample = 1 if self.mode == "exog" else width               # backbone outputs
        self.embedding_dim = per_sample * int(horizon_out) * int(n_out)
        self.head = nn.Sequential(
            nn.LayerNorm(self.embedding_dim), nn.Dropout(float(dropout)),
            nn.Linear(self.embedding_dim, int(hidden)), nn.GELU(), nn.Dropout(float(dropout)),
            nn.Linear(int(hidden), int(n_classes)),
        )
        self._dry_run()

    def _dry_run(self) -> None:
        """One no-grad forward on two zero windows in eval mode (BatchNorm statistics are left
        untouched), so that sizes neuralforecast only rejects inside ``forward`` (FEDformer
        ``modes`` above half the decoder length, TimesNet ``top_k`` above the number of
        frequencies, ...) fail here, at construction, with the configuration named, and not
        in the first training step."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                self.embed(torch.zeros(2, *self.input_shape))
        except FactoryError:
            raise
        except Exception as err:  # re-raised with the configuration that caused it
            raise FactoryError(
                f"NeuralForecastNet: {self.architecture} (mode={self.mode}) fails on windows of "
                f"shape {self.input_shape}: {type(err).__name__}: {err}; fix "
                f"`model.network.backbone` (or adapter.seq_len / horizon_out / n_out)") from err
        finally:
            self.train(was_training)

    @staticmethod
    def _check_target(target_feature: int, n_features: int) -> int:
        ok = _is_int(target_feature, minimum=-n_features) and target_feature < n_features
        _require(ok, "target_feature", target_feature,
                 f"a column index in [0, {n_features}) (the network sees no feature names)", 0)
        return target_feature % n_features

    def windows_batch(self, x: torch.Tensor) -> dict[str, torch.Tensor | None]:
        """neuralforecast's input dict for windows ``x`` (B, seq_len, n_features)."""
        x = x[:, x.shape[1] - self.input_len:]  # all of it, bar patch-length trimming
        seq_len, hist = x.shape[1], None
        mix = self.mix if self.mix is not None else (lambda v: v)
        if self.mode == "exog":
            y = x.index_select(2, self.target_idx)                       # [B, L, 1]
            if self.exog_idx.numel():
                hist = mix(x.index_select(2, self.exog_idx))             # [B, L, X]
                if self.backbone.MULTIVARIATE:                           # [B, X, L, n_series=1]
                    hist = hist.transpose(1, 2).unsqueeze(-1)
        elif self.mode == "channel_independent":
            y = mix(x).transpose(1, 2).reshape(-1, seq_len, 1)          # [B*C, L, 1]
        else:
            y = mix(x)                                                   # [B, L, n_series=C]
        return {"insample_y": y, "insample_mask": torch.ones_like(y), "hist_exog": hist,
                "futr_exog": None, "stat_exog": None}

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The flattened backbone output (B, embedding_dim), before the head."""
        if x.ndim != 3 or tuple(x.shape[1:]) != self.input_shape:
            raise FactoryError(
                f"NeuralForecastNet({self.architecture}): expected windows of shape "
                f"(B, {self.input_shape[0]}, {self.input_shape[1]}), got {tuple(x.shape)}")
        out = self.backbone(self.windows_batch(x))
        return out.reshape(x.shape[0], self.embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, n_classes) for windows ``x`` of shape (B, seq_len, n_features)."""
        return self.head(self.embed(x))
