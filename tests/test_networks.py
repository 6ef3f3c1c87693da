"""Every torch network of ours (discovered from conf/model) honours the contract the shared
trainer relies on.

Shapes in, logits out; every parameter trains; a seed fixes the output; the per-step
representations of the TCN and of the causal transformer never see later steps; bad
hyper-parameters fail at construction with a FactoryError naming the YAML key; and each
`conf/model/<name>.yaml` network node builds its network (keys match the constructor).
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from factory.errors import FactoryError
from factory.models.neural.gru import GRUNet
from factory.models.neural.inceptiontime import InceptionTimeNet
from factory.models.neural.lstm import LSTMNet
from factory.models.neural.resnet1d import ResNet1DNet
from factory.models.neural.tcn import TCNNet, receptive_field
from factory.models.neural.transformer import TransformerNet
from tests.conftest import CONF, yaml_test_sizes

SEQ = (24, 5)         # (seq_len, n_features): small, so every test runs in well under a second
MULTIRES = (3, 16, 4)  # (n_timeframes, seq_len, n_channels)


def _network_yamls() -> dict[str, Path]:
    """Every model YAML whose network is one of ours (factory.models.neural), discovered."""
    out = {}
    for path in sorted((CONF / "model").glob("*.yaml")):
        target = str(OmegaConf.select(OmegaConf.load(path), "model.network._target_",
                                      default=""))
        if target.startswith("factory.models.neural."):
            out[path.stem] = path
    return out


YAMLS = _network_yamls()
NAMES = list(YAMLS)


def spec(name: str) -> tuple[type, tuple[int, ...], dict]:
    """(class, input shape, kwargs): the YAML's network at its test size (``# tests:``)."""
    root = OmegaConf.load(YAMLS[name])
    for key, value in yaml_test_sizes(YAMLS[name]).items():
        OmegaConf.update(root, key, value)
    node = OmegaConf.to_container(root.model.network)
    target = node.pop("_target_")
    node.pop("_partial_", None)
    module, _, cls_name = target.rpartition(".")
    cls = getattr(importlib.import_module(module), cls_name)
    return cls, (MULTIRES if cls.input_kind == "multires" else SEQ), node


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: waking a second thread costs more than the arithmetic it would share."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def build(name: str, seed: int = 0, **overrides) -> torch.nn.Module:
    cls, shape, kwargs = spec(name)
    torch.manual_seed(seed)
    return cls(shape, 3, **{**kwargs, **overrides})


def batch(shape: tuple[int, ...], n: int = 6, seed: int = 1) -> torch.Tensor:
    return torch.randn((n, *shape), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", NAMES)
def test_logits_shape_and_input_kind(name):
    net = build(name).eval()
    _, shape, _ = spec(name)
    out = net(batch(shape, n=5))
    assert out.shape == (5, 3) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert not torch.allclose(out.sum(1), torch.ones(5))  # logits, not probabilities
    assert net.input_kind == ("multires" if shape == MULTIRES else "sequence")


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(name):
    net = build(name).train()
    _, shape, _ = spec(name)
    loss = torch.nn.functional.cross_entropy(net(batch(shape, n=8)), torch.arange(8) % 3)
    loss.backward()
    dead = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert dead == []


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_output(name):
    _, shape, _ = spec(name)
    x = batch(shape)
    outs, grads = [], []
    for _ in range(2):
        net = build(name, seed=7).train()
        torch.manual_seed(3)  # dropout masks too
        outs.append(net(x))
        outs[-1].square().sum().backward()  # and the backward pass: training repeats exactly
        grads.append(torch.cat([p.grad.flatten() for p in net.parameters()]))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=0)
    assert not torch.equal(outs[0], build(name, seed=8).train()(x))


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip(name):
    """The estimator saves only the state_dict: a fresh build loading it predicts the same."""
    _, shape, _ = spec(name)
    net = build(name, seed=1)
    net.train()
    net(batch(shape, n=8))  # one training pass moves batch-norm running statistics
    fresh = build(name, seed=2)
    fresh.load_state_dict(net.state_dict())
    x = batch(shape)
    torch.testing.assert_close(fresh.eval()(x), net.eval()(x), rtol=0, atol=0)


@pytest.mark.parametrize(("name", "overrides"), [("tcn", {}), ("transformer", {"head": "last"})])
@pytest.mark.parametrize("k", [1, 10, 23])
def test_per_step_features_are_causal(name, overrides, k):
    net = build(name, **overrides).eval()
    x = batch(SEQ)
    later = x.clone()
    later[:, k:] += torch.randn_like(later[:, k:])  # perturb steps >= k only
    h, h_later = net.features(x), net.features(later)
    assert h.shape[:2] == (6, SEQ[0])
    torch.testing.assert_close(h[:, :k], h_later[:, :k], rtol=0, atol=1e-6)
    assert (h[:, k:] - h_later[:, k:]).abs().amax() > 1e-3  # later steps did see the change


def test_pooled_transformer_is_not_causal_and_works():
    """The control for the causality test: without the mask, early steps see later ones."""
    net = build("transformer", head="pooled").eval()
    x = batch(SEQ)
    later = x.clone()
    later[:, -1] += 1.0
    assert (net.features(x)[:, 0] - net.features(later)[:, 0]).abs().amax() > 1e-4
    out = net(x)
    assert out.shape == (6, 3) and torch.isfinite(out).all()
    torch.testing.assert_close(out, net.head(net.features(x).mean(dim=1)))


def test_learned_positions_train():
    net = build("transformer", positional="learned").train()
    net(batch(SEQ)).sum().backward()
    assert net.position.grad is not None and net.position.grad.abs().sum() > 0


def test_tcn_receptive_field_covers_the_window():
    assert receptive_field(3, 4) == 61
    net = TCNNet((60, 40))  # the defaults: four levels reach back over a 60-bar window
    assert net.n_levels == 4 and net.receptive_field == 61
    net = build("tcn").eval()
    assert net.receptive_field >= SEQ[0]
    x = batch(SEQ)
    first = x.clone()
    first[:, 0] += 1.0  # the oldest bar still moves the decision bar's representation
    assert (net.features(x)[:, -1] - net.features(first)[:, -1]).abs().amax() > 1e-4


def test_resnet1d_keeps_timeframes_apart():
    """Folding T into the batch must not mix samples: sample 0's logits ignore sample 1."""
    net = build("resnet1d").eval()
    x = batch(MULTIRES)
    other = x.clone()
    other[1:] = torch.randn_like(other[1:])
    torch.testing.assert_close(net(x)[0], net(other)[0])
    per_tf = net.timeframe_features(x)
    assert per_tf.shape == (6, MULTIRES[0], 16)
    assert not torch.allclose(per_tf[:, 0], per_tf[:, 1])  # each timeframe pooled separately


@pytest.mark.parametrize(("cls", "shape", "kwargs", "key"), [
    (TransformerNet, SEQ, {"d_model": 64, "n_heads": 3}, "model.network.n_heads"),
    (TransformerNet, SEQ, {"head": "first"}, "model.network.head"),
    (LSTMNet, SEQ, {"hidden_size": 0}, "model.network.hidden_size"),
    (GRUNet, SEQ, {"dropout": 1.0}, "model.network.dropout"),
    (TCNNet, SEQ, {"kernel_size": 1}, "model.network.kernel_size"),
    (InceptionTimeNet, SEQ, {"kernel_sizes": [10, 20, 40]}, "model.network.kernel_sizes"),
    (ResNet1DNet, MULTIRES, {"channels": [16, -1]}, "model.network.channels"),
    (ResNet1DNet, MULTIRES, {"channels": 32}, "model.network.channels"),
    (LSTMNet, SEQ, {"num_layers": 1.5}, "model.network.num_layers"),
    (ResNet1DNet, SEQ, {}, "adapter=multires"),
    (LSTMNet, MULTIRES, {}, "adapter=sequence"),
])
def test_bad_hyper_parameters_raise(cls, shape, kwargs, key):
    with pytest.raises(FactoryError, match=key.replace(".", r"\.")):
        cls(shape, 3, **kwargs)


@pytest.mark.parametrize("name", NAMES)
def test_yaml_network_node_builds_the_network(name):
    node = OmegaConf.load(CONF / "model" / f"{name}.yaml").model.network
    cls, shape, _ = spec(name)
    keys = set(node) - {"_target_", "_partial_"}
    kwonly = {p.name for p in inspect.signature(cls).parameters.values()
              if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert keys == kwonly  # every hyper-parameter is in the YAML, and nothing else
    net = instantiate(node)(input_shape=shape, n_classes=3)  # as the estimator will call it
    assert type(net) is cls
    assert net(batch(shape, n=2)).shape == (2, 3)
