"""``train.unsampled_update``: what SGD does to an op that a step does not sample (SPEC section 2).

The known answer: an op used at step 0 and never again.  Under ``decay`` (zero-filled gradients,
the RLNAS / GeNAS code on PyTorch 1.x) each later step applies weight decay and nesterov momentum
with a zero gradient, a linear recurrence on (weight, momentum buffer) whose N-th power is the
closed form below; under ``freeze`` (``None`` gradients) the op keeps its step-1 weights.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from supernet.config import TrainConfig
from genas.errors import ConfigError
from genas.spaces import NB201Arch
from supernet import NB201Supernet
from supernet.train import SupernetTrainer

LR, WD, MOM = 0.025, 5e-4, 0.9
USED = NB201Arch.from_genes([2, 1, 1, 1, 1, 1])  # nor_conv_1x1 on edge 1<-0
OTHER = NB201Arch.from_genes([3, 1, 1, 1, 1, 1])  # never nor_conv_1x1 again


class ScriptedSampler:
    """Step 0 samples ``USED`` in every cell, every later step ``OTHER``."""

    def __init__(self, num_cells: int) -> None:
        self.num_cells, self.calls = num_cells, 0

    def sample(self):
        self.calls += 1
        return (USED if self.calls == 1 else OTHER,) * self.num_cells

    def state_dict(self):
        return {"calls": self.calls}

    def load_state_dict(self, state):
        self.calls = state["calls"]


class FixedLoader:
    """``steps`` batches of fixed random images per epoch."""

    def __init__(self, steps: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.batches = [(torch.randn(8, 1, 8, 8, generator=g), torch.randint(0, 3, (8,), generator=g)) for _ in range(steps)]

    def __len__(self) -> int:
        return len(self.batches)

    def iter_from(self, epoch: int, step: int):
        return iter(self.batches[step:])


def trainer(mode: str, steps: int) -> SupernetTrainer:
    torch.manual_seed(0)
    net = NB201Supernet(num_classes=3, in_chans=1, channels=4, layers=1)
    cfg = TrainConfig(epochs=1, lr=LR, lr_min=LR, momentum=MOM, nesterov=True, weight_decay=WD,
                      channels_last=False, unsampled_update=mode)  # fmt: skip
    return SupernetTrainer(net, ScriptedSampler(net.num_search_cells), FixedLoader(steps), cfg, torch.device("cpu"),
                           progress=False)  # fmt: skip


def closed_form(w1: np.ndarray, buf0: np.ndarray, n: int) -> np.ndarray:
    """Weights after ``n`` steps of SGD(nesterov) with zero gradient from (w1, buf0), elementwise.

    With d = wd * w:  buf' = mom * buf + wd * w,  w' = w - lr * (wd * w + mom * buf'), i.e.
    [w', buf'] = A [w, buf] with A = [[1 - lr*wd*(1+mom), -lr*mom^2], [wd, mom]].
    """
    a = np.array([[1 - LR * WD * (1 + MOM), -LR * MOM**2], [WD, MOM]], dtype=np.float64)
    an = np.linalg.matrix_power(a, n)
    return an[0, 0] * w1 + an[0, 1] * buf0


@pytest.mark.parametrize("mode", ["decay", "freeze"])
def test_op_used_once_follows_the_closed_form(mode):
    n = 40
    t = trainer(mode, n + 1)
    op = t.model.op_module(0, 0, "nor_conv_1x1")[1]  # ReLU -> Conv -> BN(affine=False): the conv holds the weights
    t.fit(max_steps=1)
    w1 = op.weight.detach().double().clone()
    buf0 = t.optimizer.state[op.weight]["momentum_buffer"].double().clone()
    t.fit()
    w = op.weight.detach().double()
    if mode == "freeze":
        assert torch.equal(w, w1)
    else:
        expected = closed_form(w1.numpy(), buf0.numpy(), n)
        np.testing.assert_allclose(w.numpy(), expected, rtol=1e-5, atol=1e-9)
        assert not torch.allclose(w, w1)  # the decay moved it
    never = t.model.op_module(0, 1, "nor_conv_1x1")[1].weight  # never sampled: untouched in both modes
    assert never.grad is None


def test_resume_restores_which_ops_were_touched():
    full = trainer("decay", 12)
    full.fit()
    cut = trainer("decay", 12)
    cut.fit(max_steps=5)
    state = cut.state_dict()
    again = trainer("decay", 12)
    again.load_state_dict(state)
    again.fit()
    for (name, a), b in zip(full.model.named_parameters(), again.model.parameters()):
        assert torch.equal(a, b), name


def test_resume_under_the_other_setting_is_refused():
    t = trainer("decay", 3)
    t.fit(max_steps=1)
    other = trainer("freeze", 3)
    with pytest.raises(ConfigError, match="unsampled_update 'decay', this config says 'freeze'"):
        other.load_state_dict(t.state_dict())
    old = {k: v for k, v in t.state_dict().items() if k not in ("unsampled_update", "touched")}
    with pytest.raises(ConfigError, match="trained with train.unsampled_update 'freeze'"):
        trainer("decay", 3).load_state_dict(old)  # a checkpoint from before the option ran `freeze`


def test_unknown_value_names_the_choices():
    from genas.config import load_config

    with pytest.raises(ConfigError, match=r"unsampled_update.*must be one of \{'decay', 'freeze'\}. Got 'decy'"):
        load_config(None, ["--train.unsampled_update", "decy"])
