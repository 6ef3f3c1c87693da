"""TimesFM 2.5 (Google, ``timesfm`` 3.x torch API) as a zero-shot barrier classifier.

TimesFM 2.5 is a decoder-only transformer over 32-step input patches that emits a point
forecast and quantiles 0.1 .. 0.9 (its output column 0 is the mean, 1..9 the quantiles) for
up to 1024 steps from one pass of its continuous quantile head.

Loading: ``TimesFM_2p5_200M_torch`` hard-codes its size in a class attribute (the
``TimesFM_2p5_200M_Definition`` dataclass), so the architecture is read from the shapes in
``model.safetensors`` instead (layers, model width, heads from the per-head scale, hidden
widths): the released 200M checkpoint gives back exactly the stock definition, and a
smaller checkpoint of the same architecture (the tests' tiny random one) gets a module
subclass with its own definition. The module is built on the ``meta`` device and the
tensors are assigned from ``safetensors.torch.load_file`` (strict: every tensor must match),
so no 200M random initialisation is paid and nothing is unpickled. Forecasting goes through
the library's own ``compile(ForecastConfig)`` + ``forecast`` (normalisation, flip
invariance, quantile head, crossing fix).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from factory.errors import FactoryError
from factory.models.foundation.zero_shot import ZeroShotForecaster

DEFAULT_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
N_OUTPUTS = 10  # mean + 9 quantiles per forecast step


def definition_from_shapes(shapes: dict[str, tuple[int, ...]]):
    """The TimesFM 2.5 definition whose module has tensors of these ``shapes``."""
    from timesfm import configs
    from timesfm.timesfm_2p5.timesfm_2p5_base import TimesFM_2p5_200M_Definition

    stock = TimesFM_2p5_200M_Definition()
    try:
        n_layers = 1 + max(int(k.split(".")[1]) for k in shapes if k.startswith("stacked_xf."))
        model_dims = shapes["stacked_xf.0.pre_attn_ln.scale"][0]
        head_dims = shapes["stacked_xf.0.attn.per_dim_scale.per_dim_scale"][0]
        ff_hidden = shapes["stacked_xf.0.ff0.weight"][0]
        tok_hidden, tok_in = shapes["tokenizer.hidden_layer.weight"]
        point_hidden = shapes["output_projection_point.hidden_layer.weight"][0]
        point_out = shapes["output_projection_point.output_layer.weight"][0]
        quant_hidden = shapes["output_projection_quantiles.hidden_layer.weight"][0]
        quant_out = shapes["output_projection_quantiles.output_layer.weight"][0]
    except (KeyError, ValueError, IndexError) as exc:
        raise FactoryError(f"model.safetensors is not a TimesFM 2.5 checkpoint (missing "
                           f"{exc}): use google/timesfm-2.5-200m-pytorch") from None

    def block(base, **kw):
        return dataclasses.replace(base, **kw)

    xf = block(stock.stacked_transformers.transformer, model_dims=model_dims,
               hidden_dims=ff_hidden, num_heads=model_dims // head_dims)
    return dataclasses.replace(
        stock,
        input_patch_len=tok_in // 2,
        output_patch_len=point_out // N_OUTPUTS,
        output_quantile_len=quant_out // N_OUTPUTS,
        tokenizer=block(stock.tokenizer, input_dims=tok_in, hidden_dims=tok_hidden,
                        output_dims=model_dims),
        stacked_transformers=configs.StackedTransformersConfig(num_layers=n_layers,
                                                               transformer=xf),
        output_projection_point=block(stock.output_projection_point, input_dims=model_dims,
                                      hidden_dims=point_hidden, output_dims=point_out),
        output_projection_quantiles=block(stock.output_projection_quantiles,
                                          input_dims=model_dims, hidden_dims=quant_hidden,
                                          output_dims=quant_out),
    )


def load_timesfm(weights_file: Path, device: str):
    """A compiled-ready ``TimesFM_2p5_200M_torch`` holding the tensors of ``weights_file``."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file
    from timesfm.timesfm_2p5 import timesfm_2p5_torch as tfm

    with safe_open(str(weights_file), framework="pt") as fh:
        shapes = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}  # noqa: SIM118
    definition = definition_from_shapes(shapes)
    module_cls = tfm.TimesFM_2p5_200M_torch_module
    if definition != module_cls.config:
        module_cls = type("TimesFM2p5Module", (module_cls,), {"config": definition})
    with torch.device("meta"):  # no random init of weights that are overwritten next
        wrapper = tfm.TimesFM_2p5_200M_torch(torch_compile=False)
        module = module_cls()
    module.load_state_dict(load_file(str(weights_file)), strict=True, assign=True)
    module.device = torch.device(device)
    module.device_count = 1
    wrapper.model = module.to(module.device).eval()
    return wrapper


class TimesFMModel(ZeroShotForecaster):
    """TimesFM 2.5 forecaster (``conf/model/timesfm.yaml``).

    Besides :class:`ZeroShotForecaster`'s parameters, the library's ``ForecastConfig`` flags:
    ``normalize_inputs``, ``use_continuous_quantile_head``, ``force_flip_invariance``,
    ``fix_quantile_crossing``; ``torch_compile`` compiles the forward pass (GPU runs).
    """

    weight_files = ("model.safetensors",)

    def __init__(
        self,
        weights: str = "google/timesfm-2.5-200m-pytorch",
        quantile_levels: list[float] = DEFAULT_LEVELS,
        batch_size: int = 256,
        device: str = "auto",
        n_paths: int = 512,
        monitoring: str = "continuous",
        vertical: str = "zero",
        proba_floor: float = 0.001,
        normalize_inputs: bool = True,
        use_continuous_quantile_head: bool = True,
        force_flip_invariance: bool = True,
        fix_quantile_crossing: bool = True,
        torch_compile: bool = False,
        random_state: int = 42,
    ) -> None:
        self.weights = weights
        self.quantile_levels = quantile_levels
        self.batch_size = batch_size
        self.device = device
        self.n_paths = n_paths
        self.monitoring = monitoring
        self.vertical = vertical
        self.proba_floor = proba_floor
        self.normalize_inputs = normalize_inputs
        self.use_continuous_quantile_head = use_continuous_quantile_head
        self.force_flip_invariance = force_flip_invariance
        self.fix_quantile_crossing = fix_quantile_crossing
        self.torch_compile = torch_compile
        self.random_state = random_state

    def _load_backbone(self, directory: Path, device: str):
        import torch

        wrapper = load_timesfm(directory / "model.safetensors", device)
        if self.torch_compile:
            wrapper.model.forward = torch.compile(wrapper.model.forward)
        self.compiled_for_ = None
        return wrapper

    def _native_levels(self) -> list[float]:
        return list(self.backbone_.model.config.quantiles)

    def _compile(self, rows: int, context_len: int, horizon: int) -> None:
        """(Re)build the library's batched decode for this batch, context and horizon (cheap:
        it only builds a closure; a batch of ``rows`` is decoded in one call, unpadded)."""
        import timesfm

        model = self.backbone_.model
        key = (rows, context_len, horizon)
        if self.compiled_for_ == key:
            return
        if self.use_continuous_quantile_head and horizon > model.os:
            raise FactoryError(f"horizon={horizon} exceeds TimesFM's quantile head "
                               f"({model.os} steps): set model.use_continuous_quantile_head=false")
        limit = model.config.context_limit - math.ceil(horizon / model.o) * model.o
        self.backbone_.compile(timesfm.ForecastConfig(
            max_context=min(context_len, limit), max_horizon=horizon,
            per_core_batch_size=rows, normalize_inputs=self.normalize_inputs,
            use_continuous_quantile_head=self.use_continuous_quantile_head,
            force_flip_invariance=self.force_flip_invariance, infer_is_positive=True,
            fix_quantile_crossing=self.fix_quantile_crossing))
        self.compiled_for_ = key

    def _forecast(self, context: np.ndarray, horizon: int) -> np.ndarray:
        self._compile(*context.shape, horizon)
        _, quantiles = self.backbone_.forecast(horizon=horizon, inputs=list(context))
        return quantiles[:, :horizon, 1:]  # drop the mean column: levels 0.1 .. 0.9
