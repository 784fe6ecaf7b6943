"""The captured graph step (``train.step: graph`` on CUDA) against the eager step, and the grouped
flatness engine on CUDA.

Skipped where no GPU is present (CI, and the session that wrote it: these checks have not run yet);
run on a GPU machine with ``pytest tests/test_graph_step_cuda.py``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from supernet import UniformPathSampler, create_supernet
from supernet.config import TrainConfig
from supernet.train import SupernetTrainer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

DEVICE = torch.device("cuda")


class Loader:
    """Fixed batches on the GPU; the last one smaller when ``odd`` (the uncaptured path)."""

    device = DEVICE

    def __init__(self, steps: int, odd: bool = False) -> None:
        g = torch.Generator().manual_seed(0)
        sizes = [16] * steps if not odd else [16] * (steps - 1) + [5]
        self.batches = [(torch.randn(n, 3, 16, 16, generator=g).to(DEVICE), torch.randint(0, 10, (n,), generator=g).to(DEVICE))
                        for n in sizes]  # fmt: skip

    def __len__(self) -> int:
        return len(self.batches)

    def iter_from(self, epoch: int, step: int):
        return iter(self.batches[step:])


def trainer(space: str, step: str, mode: str, odd: bool = False, amp: str = "none") -> SupernetTrainer:
    torch.manual_seed(0)
    net = create_supernet(space, num_classes=10, channels=8, layers=2 if space == "nb201" else 3, device=DEVICE)
    cfg = TrainConfig(epochs=2, lr=0.025, lr_min=0.001, unsampled_update=mode, step=step, grad_clip=1.0, amp=amp,
                      channels_last=False, step_fallback=False)  # fmt: skip
    return SupernetTrainer(net, UniformPathSampler(net.space, net.num_search_cells, 1), Loader(12, odd), cfg, DEVICE,
                           progress=False)  # fmt: skip


@pytest.mark.parametrize("space", ["nb201", "darts"])
@pytest.mark.parametrize("mode", ["decay", "freeze"])
def test_captured_step_trains_like_the_eager_step(space, mode):
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    eager, graph = trainer(space, "eager", mode, odd=True), trainer(space, "graph", mode, odd=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback on CUDA
        graph.fit()
    eager.fit()
    assert graph.graph is not None and graph.graph._graph is not None
    np.testing.assert_allclose([r["train_loss"] for r in graph.history], [r["train_loss"] for r in eager.history], atol=1e-4)
    for (name, p), q in zip(eager.model.named_parameters(), graph.model.parameters()):
        torch.testing.assert_close(q, p, atol=1e-4, rtol=0, msg=lambda m, name=name: f"{name}: {m}")
    for (name, p), q in zip(eager.model.named_buffers(), graph.model.buffers()):
        torch.testing.assert_close(q.float(), p.float(), atol=1e-4, rtol=0, msg=lambda m, name=name: f"{name}: {m}")


def test_captured_step_resumes_exactly():
    full = trainer("nb201", "graph", "decay")
    full.fit()
    cut = trainer("nb201", "graph", "decay")
    cut.fit(max_steps=17)
    again = trainer("nb201", "graph", "decay")
    again.load_state_dict(cut.state_dict())
    again.fit()
    for p, q in zip(full.model.parameters(), again.model.parameters()):
        torch.testing.assert_close(q, p, atol=1e-5, rtol=0)  # cuDNN's backward need not be bitwise deterministic


def test_captured_step_with_bf16_autocast_runs():
    t = trainer("nb201", "graph", "decay", amp="bf16")
    t.fit()
    assert np.isfinite(t.history[-1]["train_loss"])


def test_grouped_flatness_on_cuda_equals_loop():
    from scorers import ScoringContext, create_scorer

    torch.manual_seed(0)
    net = create_supernet("nb201", num_classes=10, channels=8, layers=2, device=DEVICE).eval()
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(64, 3, 16, 16, generator=g).to(DEVICE), torch.randint(0, 10, (64,), generator=g).to(DEVICE))
               for _ in range(2)]  # fmt: skip
    ctx = ScoringContext(net, device=DEVICE, train_batches=[b[0] for b in batches], valid_batches=batches)
    rng = np.random.default_rng(0)
    archs = [net.space.sample(rng) for _ in range(4)]
    loop = np.array([create_scorer("flatness", batching="loop").losses(a, ctx) for a in archs])
    grouped = np.array(create_scorer("flatness", batching="grouped", candidates=4).grouped_losses(archs, ctx))
    np.testing.assert_allclose(grouped, loop, atol=1e-5, rtol=0)
