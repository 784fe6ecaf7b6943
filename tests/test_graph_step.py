"""``train.step: graph``: the masked, capturable step against the eager step (run uncaptured on CPU).

What the mask formulation changes: every op runs, so every parameter gets a gradient each step (an
exact zero off the path, where the eager step leaves ``None``).  The update set is therefore not
read from the gradients but from per-unit masks: ``decay`` updates every op that has been live
once, ``freeze`` only this step's live ops; the tests below check that this reproduces both
settings, BN statistics included, and that a resume continues exactly.

The two steps sum the same gradients in a different order (a node's gradient is the sum over its
consumers, and the masked graph has more of them), so they agree to rounding, not bit for bit;
over 50 steps at lr 0.025 the gaps measured here were at most 2.4e-7 (losses), 1.2e-7 (weights)
and 9.5e-7 (BN running variances).  At lr 0.05 a few seeds put a pre-activation close enough
to a ReLU kink that the 1-ulp difference flips it and the runs part by ~1e-4: the test keeps
lr 0.025, as in the RLNAS recipe.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from genas.errors import ConfigError
from genas.spaces import NB201Arch
from supernet import UniformPathSampler, create_supernet
from supernet.config import TrainConfig
from supernet.graph_step import GraphStep, graph_step_unavailable
from supernet.masked import MaskedBN, PathMasks, masked_forward
from supernet.train import SupernetTrainer
from tests.test_unsampled_update import LR, MOM, USED, WD, ScriptedSampler, closed_form

STEPS = 50


class Loader:
    """``steps`` fixed batches of random 8x8 images, 3 classes."""

    def __init__(self, steps: int, batch: int = 8, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.batches = [(torch.randn(batch, 1, 8, 8, generator=g), torch.randint(0, 3, (batch,), generator=g))
                        for _ in range(steps)]  # fmt: skip

    def __len__(self) -> int:
        return len(self.batches)

    def iter_from(self, epoch: int, step: int):
        return iter(self.batches[step:])


def net(space: str, layers: int = 1):
    torch.manual_seed(0)
    return create_supernet(space, num_classes=3, in_chans=1, channels=4, layers=layers)


def trainer(space: str, step: str, mode: str = "decay", steps: int = STEPS, epochs: int = 1, clip: float | None = 0.5,
            layers: int = 1, sampler=None) -> SupernetTrainer:  # fmt: skip
    model = net(space, layers)
    cfg = TrainConfig(epochs=epochs, lr=0.025, lr_min=0.001, channels_last=False, unsampled_update=mode, step=step,
                      grad_clip=clip)  # fmt: skip
    sampler = sampler or UniformPathSampler(model.space, model.num_search_cells, seed=1)
    return SupernetTrainer(model, sampler, Loader(steps), cfg, torch.device("cpu"), progress=False, graph_capture=False)


def run_steps(t: SupernetTrainer) -> list[float]:
    """Every batch of epoch 0 through ``train_step``; the per-step mean losses."""
    losses = []
    for x, y in t.loader.iter_from(0, 0):
        loss, _ = t.train_step(x, y)
        losses.append(loss.item() / len(y))
        t.global_step += 1
    return losses


def assert_same_state(a: SupernetTrainer, b: SupernetTrainer, atol: float) -> None:
    for (name, p), q in zip(a.model.named_parameters(), b.model.parameters()):
        torch.testing.assert_close(p, q, atol=atol, rtol=0, msg=lambda m, name=name: f"{name}: {m}")
    for (name, p), q in zip(a.model.named_buffers(), b.model.buffers()):
        if p.dtype == torch.long:  # num_batches_tracked: only the BNs that ran count a batch
            assert torch.equal(p, q), name
        else:
            torch.testing.assert_close(p, q, atol=atol, rtol=0, msg=lambda m, name=name: f"{name}: {m}")


# ---- the masks ------------------------------------------------------------------------------
def test_path_masks_by_hand():
    """Edge 1<-0 runs conv 1x1 but node 1 feeds only `none` edges: it ran, it is not live."""
    model = net("nb201")
    masks = PathMasks(model)
    arch = NB201Arch(("nor_conv_1x1", "nor_conv_3x3", "none", "skip_connect", "none", "avg_pool_3x3"))
    op_mask, ran, live = (t.numpy() for t in masks.views(torch.from_numpy(masks.encode(arch))))
    assert op_mask.shape == (3, 6, 4) and op_mask.sum() == 3 * 4  # four non-none edges per cell
    conv1 = masks.op_unit(0, 0, masks.ops.index("nor_conv_1x1"))
    conv3 = masks.op_unit(0, 1, masks.ops.index("nor_conv_3x3"))
    assert ran[conv1] == 1 and live[conv1] == 0  # 1<-0 feeds node 1, whose outgoing edges are none
    assert ran[conv3] == 1 and live[conv3] == 1  # 2<-0 feeds node 2, which feeds node 3 by avg pool
    assert ran[: masks.num_fixed].all() and live[: masks.num_fixed].all()
    assert ran.sum() == masks.num_fixed + 3 * 4 and live.sum() == masks.num_fixed + 3 * 3


class FixedPath:
    """Samples the same path every step."""

    def __init__(self, path) -> None:
        self.path = path

    def sample(self):
        return self.path

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def test_a_cell_cut_off_from_its_input_stops_the_gradient_upstream():
    """Cell 1 computes conv1x1 of an all-zero node: its output does not depend on its input, so the
    stem, cell 0 and the block between them get no gradient (in the eager step: None); cell 2 does."""
    model = net("nb201")
    cut = NB201Arch(("none", "none", "none", "none", "nor_conv_1x1", "none"))
    full = NB201Arch(("nor_conv_3x3", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "none", "avg_pool_3x3"))
    path = (full, cut, full)
    masks = PathMasks(model)
    live = masks.views(torch.from_numpy(masks.encode(path)))[2].numpy()
    names = [name for name, _ in model.fixed_modules()]
    assert [live[names.index(n)] for n in ("stem", "lastact", "classifier")] == [0, 1, 1]
    assert live[masks.op_unit(0, 0, masks.ops.index("nor_conv_3x3"))] == 0  # cell 0, before the cut
    assert live[masks.op_unit(1, 4, masks.ops.index("nor_conv_1x1"))] == 1  # the conv of the cut cell
    assert live[masks.op_unit(2, 0, masks.ops.index("nor_conv_3x3"))] == 1
    eager = trainer("nb201", "eager", "freeze", steps=3, sampler=FixedPath(path))
    graph = trainer("nb201", "graph", "freeze", steps=3, sampler=FixedPath(path))
    stem = graph.model.stem[0].weight.detach().clone()
    np.testing.assert_allclose(run_steps(graph), run_steps(eager), atol=1e-6, rtol=0)
    assert_same_state(eager, graph, atol=1e-6)
    assert eager.model.stem[0].weight.grad is None and torch.equal(graph.model.stem[0].weight, stem)


@pytest.mark.parametrize("space", ["nb201", "darts"])
def test_masked_forward_is_the_path_forward(space):
    """Same logits as the sampled-path forward, and BN statistics moved only where the path ran."""
    model = net(space, layers=1 if space == "nb201" else 3)
    masks, bn = PathMasks(model), MaskedBN(PathMasks(model), torch.device("cpu"))
    path = UniformPathSampler(model.space, model.num_search_cells, seed=3).sample()
    x = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    twin = net(space, layers=1 if space == "nb201" else 3)
    expected = twin(x, path)
    plan = torch.from_numpy(masks.encode(path))
    op_mask, ran, _ = masks.views(plan)
    bn.save()
    got = masked_forward(model, x, op_mask)
    bn.restore(ran)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    for (name, a), b in zip(model.named_buffers(), twin.buffers()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=lambda m, name=name: f"{name}: {m}")


# ---- equivalence with the eager step --------------------------------------------------------
@pytest.mark.parametrize("mode", ["decay", "freeze"])
@pytest.mark.parametrize("space", ["nb201", "darts"])
def test_graph_step_gives_the_eager_losses_and_weights(space, mode):
    """50 steps, same paths, clipped gradients: losses, weights, momentum buffers and BN statistics to 1e-5."""
    eager, graph = trainer(space, "eager", mode), trainer(space, "graph", mode)
    assert graph.graph is not None
    np.testing.assert_allclose(run_steps(graph), run_steps(eager), atol=1e-5, rtol=0)
    assert_same_state(eager, graph, atol=1e-5)
    for p, q in zip(eager.model.parameters(), graph.model.parameters()):
        buf = eager.optimizer.state.get(p, {}).get("momentum_buffer")
        mine = graph.optimizer.state[q]["momentum_buffer"]
        torch.testing.assert_close(mine, torch.zeros_like(mine) if buf is None else buf, atol=1e-5, rtol=0)
    touched = [n for n, p in eager.model.named_parameters() if p.grad is not None]
    assert graph.graph.touched_names() == touched  # the checkpoint's list, as the eager step writes it


def test_clipping_engages_and_the_device_lr_agrees():
    """The clip changes the run (it is active), and the learning rate read from a device tensor (as the
    captured graph reads it) stays within 1e-5 of the eager step too."""
    eager = trainer("nb201", "eager")
    graph = trainer("nb201", "graph")
    graph.graph = GraphStep(graph.model, graph.optimizer, graph.cfg, torch.device("cpu"), capture=False, lr_tensor=True)
    np.testing.assert_allclose(run_steps(graph), run_steps(eager), atol=1e-5, rtol=0)
    assert_same_state(eager, graph, atol=1e-5)
    unclipped = trainer("nb201", "eager", clip=None)
    run_steps(unclipped)
    assert not torch.allclose(unclipped.model.stem[0].weight, eager.model.stem[0].weight, atol=1e-4)


def test_darts_normal_and_reduce_cells_use_their_own_masks():
    """Three DARTS cells (normal, reduce, reduce): a few steps agree with the eager step."""
    eager, graph = trainer("darts", "eager", steps=3, layers=3), trainer("darts", "graph", steps=3, layers=3)
    np.testing.assert_allclose(run_steps(graph), run_steps(eager), atol=1e-6, rtol=0)
    assert_same_state(eager, graph, atol=1e-6)


@pytest.mark.parametrize("mode", ["decay", "freeze"])
def test_op_used_once_follows_the_closed_form_in_the_graph_step(mode):
    """The known answer of tests/test_unsampled_update.py, through the masked step."""
    n = 40
    model = net("nb201")
    cfg = TrainConfig(epochs=1, lr=LR, lr_min=LR, momentum=MOM, nesterov=True, weight_decay=WD, channels_last=False,
                      unsampled_update=mode, step="graph")  # fmt: skip
    t = SupernetTrainer(model, ScriptedSampler(model.num_search_cells), Loader(n + 1), cfg, torch.device("cpu"),
                        progress=False, graph_capture=False)  # fmt: skip
    assert USED.ops[0] == "nor_conv_1x1"
    op = model.op_module(0, 0, "nor_conv_1x1")[1]
    t.fit(max_steps=1)
    w1 = op.weight.detach().double().clone()
    buf0 = t.optimizer.state[op.weight]["momentum_buffer"].double().clone()
    never = model.op_module(0, 1, "nor_conv_1x1")[1].weight.detach().clone()
    t.fit()
    w = op.weight.detach().double()
    if mode == "freeze":
        assert torch.equal(w, w1)
    else:
        np.testing.assert_allclose(w.numpy(), closed_form(w1.numpy(), buf0.numpy(), n), rtol=1e-5, atol=1e-9)
    assert torch.equal(model.op_module(0, 1, "nor_conv_1x1")[1].weight, never)  # never sampled: untouched


# ---- resume ---------------------------------------------------------------------------------
def test_resume_mid_epoch_reproduces_the_uninterrupted_run():
    full = trainer("nb201", "graph", steps=10, epochs=2)
    full.fit()
    cut = trainer("nb201", "graph", steps=10, epochs=2)
    cut.fit(max_steps=13)  # stops in the middle of epoch 2
    again = trainer("nb201", "graph", steps=10, epochs=2)
    again.load_state_dict(cut.state_dict())
    again.fit()
    assert_same_state(full, again, atol=0.0)
    assert [r["train_loss"] for r in again.history] == [r["train_loss"] for r in full.history]


def test_an_eager_checkpoint_resumes_under_the_graph_step():
    """Touched ops and momentum buffers carry over between the two steps (same checkpoint format)."""
    full = trainer("nb201", "eager", steps=10, epochs=2)
    full.fit()
    cut = trainer("nb201", "eager", steps=10, epochs=2)
    cut.fit(max_steps=7)
    again = trainer("nb201", "graph", steps=10, epochs=2)
    again.load_state_dict(cut.state_dict())
    again.fit()
    assert_same_state(full, again, atol=1e-5)


# ---- where it cannot run --------------------------------------------------------------------
def test_graph_on_cpu_falls_back_with_one_warning():
    model = net("nb201")
    cfg = TrainConfig(epochs=1, channels_last=False, step="graph")
    sampler = UniformPathSampler(model.space, model.num_search_cells, seed=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = SupernetTrainer(model, sampler, Loader(3), cfg, torch.device("cpu"), progress=False)
        t.fit()
    msgs = [str(w.message) for w in caught if "train.step" in str(w.message)]
    assert len(msgs) == 1 and "CUDA graphs need a CUDA device" in msgs[0] and t.graph is None
    strict = TrainConfig(epochs=1, channels_last=False, step="graph", step_fallback=False)
    with pytest.raises(ConfigError, match=r"^train.step 'graph' cannot run here: CUDA graphs need a CUDA device.*step eager"):
        SupernetTrainer(net("nb201"), sampler, Loader(3), strict, torch.device("cpu"), progress=False)


def test_reasons_name_what_cannot_be_captured():
    model = net("nb201")

    class OnMeta(Loader):
        device = "meta"

    assert "distributed" in graph_step_unavailable(model, Loader(1), torch.device("cpu"), True, capture=False)
    assert "training data is on 'meta'" in graph_step_unavailable(model, OnMeta(1), torch.device("cpu"), False, capture=False)
    assert "Linear supernet has no masked step" in graph_step_unavailable(torch.nn.Linear(2, 2), Loader(1), torch.device("cpu"), False)
    assert graph_step_unavailable(model, Loader(1), torch.device("cpu"), False, capture=False) is None
    from genas.config import load_config

    with pytest.raises(ConfigError, match=r"'step' parameter of train must be one of \{'eager', 'graph'\}. Got 'grpah'"):
        load_config(None, ["--train.step", "grpah"])
