"""neuralforecast backbones and S-Mamba honour the network contract of the shared trainer.

Every `conf/model/*.yaml` whose network is a NeuralForecastNet or SMambaNet composes into a
partial that builds on (seq_len, n_features) windows, returns finite logits, trains end to
end and repeats under a seed. The wrapper feeds each architecture the way its capabilities
allow (exog / channel-independent / multivariate), rejects what they do not allow with a
FactoryError, and constructing a backbone leaves the process's random state alone.
"""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from factory.errors import FactoryError
from factory.models.forecasting import nf_capabilities as caps
from factory.models.forecasting.nf_backbone import NeuralForecastNet
from factory.models.neural.s_mamba import SMambaNet
from tests.conftest import CONF

SHAPE = (60, 12)  # (seq_len, n_features)
TARGETS = (f"{NeuralForecastNet.__module__}.NeuralForecastNet",
           f"{SMambaNet.__module__}.SMambaNet")


def _yamls() -> list[str]:
    """Model YAMLs whose network node targets one of the classes under test."""
    names = []
    for path in sorted((CONF / "model").glob("*.yaml")):
        target = OmegaConf.select(OmegaConf.load(path), "model.network._target_", default=None)
        if target in TARGETS:
            names.append(path.stem)
    return names


YAMLS = _yamls()


@pytest.fixture(scope="module", autouse=True)
def _one_thread_and_neuralforecast_imported():
    """Pay neuralforecast's (Lightning) import once, outside any single test's budget, and run
    these tiny batches on one thread: on a busy 2-core machine oneDNN's multi-threaded LSTM
    (DeepAR) spins on its barrier and a 2-window forward takes ~0.8 s instead of ~2 ms."""
    import neuralforecast.models  # noqa: F401

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build(name: str, seed: int = 0, shape: tuple[int, int] = SHAPE) -> torch.nn.Module:
    """The network of ``conf/model/<name>.yaml`` built as the estimator does."""
    partial = instantiate(OmegaConf.load(CONF / "model" / f"{name}.yaml").model.network)
    torch.manual_seed(seed)
    return partial(input_shape=shape, n_classes=3)


def small(seed: int = 0, **kwargs) -> NeuralForecastNet:
    return small_shaped(seed, SHAPE, **kwargs)


def small_shaped(seed: int, shape: tuple[int, int], **kwargs) -> NeuralForecastNet:
    torch.manual_seed(seed)
    return NeuralForecastNet(shape, 3, **kwargs)


def windows(n: int = 16, seed: int = 1, shape: tuple[int, int] = SHAPE) -> torch.Tensor:
    return torch.randn((n, *shape), generator=torch.Generator().manual_seed(seed))


def test_every_expected_yaml_is_covered():
    expected = {"patchtst", "itransformer", "tft", "timesnet", "autoformer", "nbeats", "nhits",
                "dlinear", "tide", "deepar", "s_mamba"}
    assert expected <= set(YAMLS)


@pytest.mark.parametrize("name", YAMLS)
def test_yaml_builds_forwards_and_trains(name):
    net = build(name).train()
    assert net.input_kind == "sequence"
    x, y = windows(), torch.randint(0, 3, (16,), generator=torch.Generator().manual_seed(2))
    logits = net(x)
    assert logits.shape == (16, 3) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, y).backward()
    trainable = {n: p for n, p in net.named_parameters() if p.requires_grad}
    reached = {n for n, p in trainable.items() if p.grad is not None and p.grad.abs().sum() > 0}
    # the head (and the feature mixer) always train; inside a backbone a few modules may be
    # idle by design (FEDformer's Fourier attention ignores its key/value projections, TFT's
    # future-input selection has no future inputs here), so at least 80% of its weights
    own = [n for n in trainable if n.startswith(("head.", "mix.", "tokenize."))]
    assert own and set(own) <= reached
    sizes = {n: p.numel() for n, p in trainable.items()}
    assert sum(sizes[n] for n in reached) >= 0.8 * sum(sizes.values())


@pytest.mark.parametrize("name", YAMLS)
def test_yaml_same_seed_same_output(name):
    x = windows(n=4)
    with torch.no_grad():
        first, again, other = (build(name, seed).eval()(x) for seed in (0, 0, 1))
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.allclose(first, other, rtol=1e-3, atol=1e-4)


def test_construction_does_not_reseed_the_process(caplog):
    """neuralforecast's BaseModel calls pl.seed_everything(1); the wrapper suppresses it, so
    the backbone's initial weights come from the caller's seed and nothing global changes."""
    py_state, np_state = random.getstate(), np.random.get_state()
    env = os.environ.get("PL_GLOBAL_SEED")
    draws = []
    for seed in (0, 1):
        net = small(seed, architecture="DLinear", n_out=2)
        draws.append((torch.rand(3), net.backbone.linear_trend.weight.detach().clone()))
    assert not torch.equal(draws[0][0], draws[1][0])  # a reseed to 1 would make these equal
    assert not torch.equal(draws[0][1], draws[1][1])
    assert random.getstate() == py_state
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), np_state, strict=True))
    assert os.environ.get("PL_GLOBAL_SEED") == env
    assert "Seed set" not in caplog.text


def test_numpy_randomness_in_a_constructor_follows_the_torch_seed():
    """FEDformer picks its Fourier modes with np.random.shuffle: construction seeds NumPy from
    the torch generator, so the network depends on the torch seed only, and NumPy's global
    state is left as it was."""
    kwargs = dict(architecture="FEDformer", n_out=2, channels=2,
                  backbone={"hidden_size": 16, "modes": 4, "mode_select": "random",
                            "encoder_layers": 1, "decoder_layers": 1})
    nets = []
    for np_seed in (0, 1):
        np.random.seed(np_seed)
        before = np.random.get_state()[1].copy()
        nets.append(small(0, **kwargs))
        assert np.array_equal(np.random.get_state()[1], before)
    first, second = (net.backbone.encoder.attn_layers[0].attention.inner_correlation.index
                     for net in nets)
    assert first == second and len(first) == 4
    x = windows(n=2)
    torch.testing.assert_close(nets[0].eval()(x), nets[1].eval()(x), rtol=0, atol=0)


def test_state_dict_round_trip_restores_outputs():
    kwargs = dict(architecture="TiDE", mode="exog", target_feature=2, horizon_out=2, n_out=4,
                  backbone={"hidden_size": 16, "decoder_output_dim": 4})
    source, target = small(0, **kwargs).eval(), small(5, **kwargs).eval()
    state = source.state_dict()
    assert not any(k.endswith(("target_idx", "exog_idx")) for k in state)  # rebuilt, not saved
    target.load_state_dict(state)
    x = windows(n=3)
    torch.testing.assert_close(source(x), target(x), rtol=0, atol=0)


def test_exog_mode_feeds_the_named_target_and_the_rest_as_exogenous():
    net = small(architecture="NHITS", mode="exog", target_feature=3,
                backbone={"mlp_units": [[8, 8]] * 3})
    x = windows(n=2)
    batch = net.windows_batch(x)
    torch.testing.assert_close(batch["insample_y"], x[..., 3:4])
    keep = [i for i in range(SHAPE[1]) if i != 3]
    torch.testing.assert_close(batch["hist_exog"], x[..., keep])
    assert net.backbone.hist_exog_size == SHAPE[1] - 1 and net.embedding_dim == 16


def test_exog_mode_on_a_multivariate_class_uses_its_exogenous_layout():
    net = small(architecture="TSMixerx", mode="exog", target_feature=0, n_out=4)
    batch = net.windows_batch(windows(n=2))
    assert batch["hist_exog"].shape == (2, SHAPE[1] - 1, SHAPE[0], 1)  # [B, X, L, n_series]
    assert net(windows(n=2)).shape == (2, 3)


def test_patches_cut_from_the_start_keep_the_newest_bars():
    """TimeXer patches its input from the first bar: with 60 bars and patch_len 16 it is given
    the newest 48, so the decision bar is never the remainder that gets dropped."""
    net = small(architecture="TimeXer", mode="exog", target_feature=1, n_out=2,
                backbone={"patch_len": 16, "hidden_size": 16, "n_heads": 2, "d_ff": 16})
    x = windows(n=2)
    assert net.input_len == 48 and net.backbone.input_size == 48
    torch.testing.assert_close(net.windows_batch(x)["insample_y"], x[:, 12:, 1:2])
    bumped = x.clone()
    bumped[:, -1, 1] += 1.0  # the decision bar of the target reaches the logits
    with torch.no_grad():
        assert not torch.allclose(net.eval()(x), net(bumped))


def test_channel_independent_keeps_features_apart():
    """Changing one feature changes only that feature's block of the embedding."""
    net = small(architecture="PatchTST", mode="channel_independent", n_out=2,
                backbone={"hidden_size": 8, "n_heads": 2, "encoder_layers": 1,
                          "patch_len": 12, "stride": 12}).eval()
    x = windows(n=2)
    bumped = x.clone()
    bumped[..., 5] += 1.0
    with torch.no_grad():
        delta = (net.embed(bumped) - net.embed(x)).abs().reshape(2, SHAPE[1], -1).sum((0, 2))
    assert delta[5] > 0
    assert torch.count_nonzero(delta) == 1
    assert net.embedding_dim == SHAPE[1] * 1 * 2


def test_multivariate_mode_and_channels_size_the_backbone():
    net = small(architecture="iTransformer", n_out=3,
                backbone={"hidden_size": 16, "n_heads": 2, "d_ff": 16})
    assert net.mode == "multivariate" and net.backbone.n_series == SHAPE[1]
    assert net.embedding_dim == SHAPE[1] * 3
    mixed = small(architecture="iTransformer", n_out=3, channels=4,
                  backbone={"hidden_size": 16, "n_heads": 2, "d_ff": 16})
    assert mixed.backbone.n_series == 4 and mixed.embedding_dim == 12
    assert mixed(windows(n=2)).shape == (2, 3)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"architecture": "NotAModel"}, "is not a neuralforecast network"),
    ({"architecture": "xLSTM"}, "xLSTM is excluded because"),
    ({"architecture": "TimeLLM"}, "TimeLLM is excluded because"),
    ({"architecture": "Informer"}, "ProbSparse attention samples keys"),
    ({"architecture": "KAN"}, "least-squares"),
    ({"architecture": "TimeXer", "backbone": {"patch_len": 61}}, "longer than the window"),
    ({"architecture": "PatchTST", "mode": "exog"}, "mode=channel_independent"),
    ({"architecture": "iTransformer", "mode": "channel_independent"}, "mode=multivariate"),
    ({"architecture": "TFT", "mode": "multivariate"}, "is univariate"),
    ({"architecture": "TFT", "mode": "sideways"}, "must be one of"),
    ({"architecture": "PatchTST", "backbone": {"hiden_size": 8}}, r"\['hiden_size'\]"),
    ({"architecture": "PatchTST", "backbone": {"max_steps": 10}}, "max_steps"),
    ({"architecture": "TFT", "target_feature": 12}, "target_feature"),
    ({"architecture": "TFT", "target_feature": "ret_1"}, "target_feature"),
    ({"architecture": "DLinear", "channels": 0}, "channels"),
    ({"architecture": "DLinear", "horizon_out": 0}, "horizon_out"),
    ({"architecture": "DLinear", "dropout": 1.0}, "dropout"),
    ({"architecture": "FEDformer", "backbone": {"hidden_size": 16, "modes": 16,
                                                "decoder_input_size_multiplier": 0.2}},
     "FEDformer .* fails on windows"),
    ({"architecture": "FEDformer", "backbone": {"n_head": 2}}, "could not build FEDformer"),
])
def test_bad_configuration_raises_factory_error(kwargs, match):
    with pytest.raises(FactoryError, match=match):
        small(**kwargs)


@pytest.mark.slow
@pytest.mark.parametrize("architecture", caps.usable_architectures())
def test_every_usable_architecture_trains_in_every_mode_it_supports(architecture):
    """Every neuralforecast network class not excluded (with its reason) builds and trains,
    at neuralforecast's default sizes, in every mode its flags permit (TimesNet's defaults
    make this ~3 s, hence slow). The classes come from neuralforecast itself: a new release's
    architecture is tested, and usable as one YAML, with no list to edit."""
    cls = caps.model_class(architecture)
    modes = caps.supported_modes(cls)
    assert caps.natural_mode(cls) in modes
    x = windows(n=4, shape=(32, 5))
    for mode in modes:
        # h = 2: N-BEATS(x) trend / seasonality stacks reject h = 1
        kwargs = dict(architecture=architecture, mode=mode, horizon_out=2, n_out=3)
        net, twin = (small_shaped(0, (32, 5), **kwargs) for _ in range(2))
        twin_state = twin.state_dict()
        assert all(torch.equal(v, twin_state[k]) for k, v in net.state_dict().items())
        with torch.no_grad():  # inference is deterministic (Informer's is not: excluded)
            torch.testing.assert_close(net.eval()(x), net(x), rtol=0, atol=0)
        logits = net.train()(x)
        assert logits.shape == (4, 3) and torch.isfinite(logits).all()
        logits.sum().backward()
        assert all(p.grad is not None for p in net.head.parameters())


def test_wrong_window_shape_raises():
    net = small(architecture="DLinear", n_out=2)
    with pytest.raises(FactoryError, match=r"expected windows of shape \(B, 60, 12\)"):
        net(torch.zeros(2, 60, 11))


def test_s_mamba_mixes_variates_in_both_directions():
    """Bidirectional over the feature tokens: the first token hears the last and vice versa
    (a one-directional scan would leave token 0 blind to every later feature)."""
    torch.manual_seed(0)
    net = SMambaNet(SHAPE, 3, d_model=8, d_state=4, d_ff=16, n_layers=1).eval()
    x = windows(n=2)
    with torch.no_grad():
        base = net.tokens(x)
        for changed, watched in ((SHAPE[1] - 1, 0), (0, SHAPE[1] - 1)):
            bumped = x.clone()
            bumped[..., changed] += 1.0
            assert (net.tokens(bumped)[:, watched] - base[:, watched]).abs().max() > 1e-6


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"d_model": 0}, "d_model"), ({"n_layers": 1.5}, "n_layers"), ({"dropout": -0.1}, "dropout"),
])
def test_s_mamba_bad_hyper_parameters_raise(kwargs, match):
    with pytest.raises(FactoryError, match=match):
        SMambaNet(SHAPE, 3, **kwargs)
