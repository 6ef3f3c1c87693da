"""Which neuralforecast architectures may be backbones, and how a window is fed to each.

neuralforecast declares each model's inputs as class flags: ``EXOGENOUS_HIST`` (it reads
historical exogenous series next to the target) and ``MULTIVARIATE`` (it forecasts
``n_series`` series jointly). The three feeding modes follow from them:

- ``exog``: one target series as ``insample_y`` [B, L, 1], every other feature as
  ``hist_exog`` (needs ``EXOGENOUS_HIST``; TFT, N-HiTS, TiDE, DeepAR, BiTCN, ...).
- ``channel_independent``: every feature is its own univariate series through one shared
  backbone, as PatchTST does (needs a univariate model, ``MULTIVARIATE = False``).
- ``multivariate``: the features are the ``n_series`` series (needs ``MULTIVARIATE``;
  iTransformer, TSMixer, TimeMixer, ...).

A model that reads no historical exogenous inputs is never given the other features through
a side door (e.g. as "future" exogenous inputs): it runs channel-independently instead.

Construction side effects are contained here: ``BaseModel.__init__`` calls
``pl.seed_everything(random_seed)``, which reseeds Python, NumPy and torch for the whole
process (and logs "Seed set to 1"). :func:`build_backbone` disables that one call while it
constructs, so the backbone's weights are drawn from the process's torch generator like any
other ``nn.Module`` (the estimator seeds it with ``random_state`` just before building). Some
constructors also draw from NumPy (FEDformer's random Fourier modes); during construction
NumPy and Python ``random`` are seeded from one torch draw and restored afterwards, so the
network is a function of the torch seed alone and the global generators are left as found.
"""

from __future__ import annotations

import inspect
import random
from contextlib import contextmanager
from typing import Any
from unittest import mock

import numpy as np
import torch
from torch import nn

from factory.errors import FactoryError

MODES: tuple[str, ...] = ("exog", "channel_independent", "multivariate")

# neuralforecast classes deliberately left out, with the reason shown to the user.
EXCLUDED: dict[str, str] = {
    "TimeLLM": "it loads a pretrained LLM with from_pretrained while being constructed "
               "(a download; this project runs offline) and accepts only fixed point losses",
    "DeepNPTS": "its forecast is a weighted average of past target values, so there is no "
                "free output layer to read a learned embedding from",
    "HINT": "it is a hierarchical-reconciliation wrapper around another model, not a network",
    "xLSTM": "it needs the optional `xlstm` package (with mlstm_kernels / ninja), which is not "
             "a dependency of this project",
    "Informer": "its ProbSparse attention samples keys with torch.randint in every forward, "
                "at inference too, so the same window gets different probabilities on every "
                "call (saved and reloaded models would not reproduce their predictions)",
    "KAN": "its spline initialisation solves a least-squares problem whose LAPACK result "
           "varies in the last bits between identical calls, so one seed does not give one "
           "network (runs would not repeat exactly)",
}
# Architectures that cut non-overlapping patches from the *start* of their input: unless the
# patch length divides it, the remainder (the newest bars, the decision bar among them) would
# be dropped. They are given the newest multiple of the patch length instead (the oldest
# bars are the ones left out). Value: the constructor argument holding the patch length.
PATCHES_FROM_START: dict[str, str] = {"TimeXer": "patch_len"}


def usable_architectures() -> list[str]:
    """Every network class neuralforecast ships (a subclass of its ``BaseModel``), minus
    :data:`EXCLUDED`: read from the library, so a new architecture needs only a YAML."""
    import neuralforecast.models as nf_models  # heavy (Lightning): imported only when used
    from neuralforecast.common._base_model import BaseModel

    names = [name for name, obj in vars(nf_models).items()
             if inspect.isclass(obj) and issubclass(obj, BaseModel) and obj is not BaseModel
             and name not in EXCLUDED]
    return sorted(names, key=str.lower)


def model_class(architecture: str) -> type[nn.Module]:
    """The neuralforecast model class named ``architecture`` (refused, with the reason, when
    it is one of :data:`EXCLUDED`)."""
    if architecture in EXCLUDED:
        raise FactoryError(
            f"NeuralForecastNet: `model.network.architecture`: {architecture} is excluded "
            f"because {EXCLUDED[architecture]}")
    usable = usable_architectures()
    if architecture not in usable:
        raise FactoryError(
            f"NeuralForecastNet: `model.network.architecture`: {architecture!r} is not a "
            f"neuralforecast network; choose one of {', '.join(usable)} (class names, "
            f"case-sensitive)")
    import neuralforecast.models as nf_models

    return getattr(nf_models, architecture)


def natural_mode(cls: type) -> str:
    """The mode an architecture is designed for: multivariate > exog > channel_independent."""
    if cls.MULTIVARIATE:
        return "multivariate"
    return "exog" if cls.EXOGENOUS_HIST else "channel_independent"


def _unsupported(cls: type) -> dict[str, str]:
    """Modes the class's flags rule out, each with the reason."""
    rules = (
        ("exog", not cls.EXOGENOUS_HIST,
         "reads no historical exogenous inputs (EXOGENOUS_HIST = False)"),
        ("channel_independent", cls.MULTIVARIATE,
         "is multivariate (it forecasts all series jointly)"),
        ("multivariate", not cls.MULTIVARIATE, "is univariate (MULTIVARIATE = False)"),
    )
    return {mode: why for mode, ruled_out, why in rules if ruled_out}


def supported_modes(cls: type) -> list[str]:
    """The feeding modes ``cls`` accepts, in ``MODES`` order."""
    return [mode for mode in MODES if mode not in _unsupported(cls)]


def check_mode(cls: type, mode: str | None) -> str:
    """``mode`` (or the natural one when None), validated against the class's flags."""
    if mode is None:
        return natural_mode(cls)
    if mode not in MODES:
        raise FactoryError(
            f"NeuralForecastNet: `model.network.mode` must be one of {', '.join(MODES)}, got "
            f"{mode!r} (try `model.network.mode={natural_mode(cls)}`)")
    why = _unsupported(cls).get(mode)
    if why:
        raise FactoryError(
            f"NeuralForecastNet: {cls.__name__} {why}, so `model.network.mode={mode}` cannot "
            f"feed it; use `model.network.mode={natural_mode(cls)}`")
    return mode


def own_parameters(cls: type) -> set[str]:
    """Constructor arguments of ``cls`` that describe the network (not BaseModel's
    data-window, loss, optimiser or Lightning-trainer arguments, which the shared trainer or
    this wrapper owns)."""
    from neuralforecast.common._base_model import BaseModel

    base = set(inspect.signature(BaseModel.__init__).parameters)
    own = set(inspect.signature(cls.__init__).parameters)
    return own - base - {"self", "trainer_kwargs", "kwargs"}


def check_backbone_kwargs(cls: type, backbone: dict[str, Any]) -> dict[str, Any]:
    """``backbone`` unchanged, after checking every key is a network argument of ``cls``.

    neuralforecast forwards unknown keyword arguments to the Lightning trainer, so a typo
    (``hiden_size``) would otherwise be accepted and silently ignored.
    """
    allowed = own_parameters(cls)
    unknown = sorted(set(backbone) - allowed)
    if unknown:
        raise FactoryError(
            f"NeuralForecastNet: `model.network.backbone` has {unknown} which "
            f"{cls.__name__} does not take as a network argument; valid keys: "
            f"{', '.join(sorted(allowed)) or '(none)'}")
    return backbone


def input_length(cls: type, seq_len: int, backbone: dict[str, Any]) -> int:
    """How many of the newest bars ``cls`` is given: ``seq_len``, or for an architecture in
    ``PATCHES_FROM_START`` the largest multiple of its patch length that fits."""
    key = PATCHES_FROM_START.get(cls.__name__)
    if key is None:
        return seq_len
    patch = int(backbone.get(key, inspect.signature(cls.__init__).parameters[key].default))
    if patch > seq_len:
        raise FactoryError(
            f"NeuralForecastNet: {cls.__name__}'s `model.network.backbone.{key}`={patch} is "
            f"longer than the window (adapter.seq_len={seq_len}); use {key} <= {seq_len}")
    return seq_len - seq_len % patch


@contextmanager
def _isolated_construction():
    """Skip ``pl.seed_everything`` inside ``BaseModel.__init__`` and run the constructor with
    NumPy / Python ``random`` seeded from one torch draw, restoring both afterwards."""
    from neuralforecast.common import _base_model

    def skip(seed: int | None = None, workers: bool = False, verbose: bool = True) -> int:
        return int(seed or 0)

    seed = int(torch.randint(0, 2**31 - 1, ()))
    np_state, py_state = np.random.get_state(), random.getstate()
    np.random.seed(seed)
    random.seed(seed)
    try:
        with mock.patch.object(_base_model.pl, "seed_everything", skip):
            yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


def build_backbone(cls: type, *, horizon: int, input_size: int, n_out: int,
                   n_series: int, n_hist: int, backbone: dict[str, Any]) -> nn.Module:
    """Construct ``cls`` as a bare network producing [B, horizon, n_series * n_out].

    ``n_out`` is passed as the output width through a point loss used only for sizing
    (``outputsize_multiplier``): it is never called, the classification loss trains the net.
    """
    from neuralforecast.losses.pytorch import BasePointLoss

    check_backbone_kwargs(cls, backbone)
    sizing = BasePointLoss(outputsize_multiplier=n_out, output_names=[""] * n_out)
    args: dict[str, Any] = dict(h=horizon, input_size=input_size, loss=sizing,
                                valid_loss=sizing, **backbone)
    if n_hist:
        args["hist_exog_list"] = [f"exog_{i}" for i in range(n_hist)]
    if cls.MULTIVARIATE:
        args["n_series"] = n_series
    try:
        with _isolated_construction():
            return cls(**args)
    except FactoryError:
        raise
    except Exception as err:  # neuralforecast raises bare Exception for bad sizes
        shown = {k: v for k, v in args.items() if k not in ("loss", "valid_loss")}
        raise FactoryError(
            f"NeuralForecastNet: neuralforecast could not build {cls.__name__}({shown}): "
            f"{err}; fix `model.network.backbone` (or adapter.seq_len / horizon_out)") from err
