"""Mixed-op supernets and architects against answers computed independently (closed forms, explicit Hessians)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genas.differentiable import (
    ArchStep, Variant, VariantSet, a2m_gradient, arch_gradient, batch_stats_only, create_architect,
    create_mixed_supernet, list_architects, register_architect,
)  # fmt: skip
from genas.differentiable.architects import ARCHITECTS, Architect, DartsArchitect
from genas.errors import ConfigError, UnknownNameError
from genas.spaces import DARTS_OPS, NB201_OPS, DartsArch, NB201Arch

ARCH = "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|nor_conv_1x1~1|nor_conv_3x3~2|"


def tiny(space="nb201", **kw):
    torch.manual_seed(0)
    opts = dict(num_classes=5, in_chans=3, channels=4, layers=1 if space == "nb201" else 3, seed=0)
    return create_mixed_supernet(space, **{**opts, **kw})


def one_hot(genes, num_ops):
    return F.one_hot(torch.tensor(genes), num_ops).float()


# ---- the mixed-op supernets ---------------------------------------------------------------------
def test_arch_and_weight_parameters_are_kept_apart():
    for space in ("nb201", "darts"):
        net = tiny(space)
        arch, weights = net.arch_parameters(), net.weight_parameters()
        ids_a, ids_w = {id(p) for p in arch}, {id(p) for p in weights}
        assert not ids_a & ids_w and ids_a | ids_w == {id(p) for p in net.parameters()}
        assert [p.shape for p in arch] == ([torch.Size([6, 5])] if space == "nb201" else [torch.Size([14, 8])] * 2)


@pytest.mark.parametrize("train", [True, False])
def test_one_hot_mixed_op_equals_the_single_path_of_the_one_shot_supernet(train):
    net = tiny("nb201").train(train)
    arch = NB201Arch.from_string(ARCH)
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        mixed = net.forward_weights(x, {"alpha": one_hot(arch.genes, len(NB201_OPS))})
        single = net.net(x, arch)
    torch.testing.assert_close(mixed, single, rtol=0, atol=1e-6)


@pytest.mark.parametrize("train", [True, False])
def test_one_hot_mixed_op_equals_the_single_path_darts(train):
    import numpy as np

    net = tiny("darts").train(train)
    arch = net.space.sample(np.random.default_rng(3))
    x = torch.randn(4, 3, 8, 8)
    weights = {g: one_hot(getattr(arch, g), len(DARTS_OPS)) for g in ("normal", "reduce")}
    with torch.no_grad():
        torch.testing.assert_close(net.forward_weights(x, weights), net.net(x, arch), rtol=0, atol=1e-6)


@pytest.mark.parametrize("channels_last", [False, True])
def test_both_forms_of_the_mixed_op_agree(channels_last):
    """The matrix-vector form (weights with a gradient) and the multiply-add chain: same values, same gradients."""
    net = tiny("nb201")
    x = torch.randn(4, 3, 8, 8)
    if channels_last:
        net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    w = F.softmax(torch.randn(6, 5), -1)
    plain = net.forward_weights(x, {"alpha": w})
    leaf = w.clone().requires_grad_()
    matvec = net.forward_weights(x, {"alpha": leaf})
    torch.testing.assert_close(matvec, plain, rtol=1e-5, atol=1e-6)
    (g_matvec,) = torch.autograd.grad(matvec.square().sum(), leaf)
    ref = w.clone().requires_grad_()

    def chain(ops, h, weights, edge):
        row = weights[edge.group][edge.index]
        return sum(row[k] * op(h) for k, op in enumerate(ops.values(), start=1))

    net.edge_fn = chain
    (g_chain,) = torch.autograd.grad(net.forward_weights(x, {"alpha": ref}).square().sum(), ref)
    torch.testing.assert_close(g_matvec, g_chain, rtol=1e-4, atol=1e-6)


def test_none_is_a_zero_op_that_still_takes_softmax_mass():
    net = tiny("nb201")
    x = torch.randn(2, 3, 8, 8)
    logits = torch.zeros(6, 5)
    logits[:, 0] = 30.0  # every edge (almost) all `none`: each cell outputs ~0
    out = net(x, {"alpha": logits})
    zero_cells = net.net.run(x, lambda k, cell, h: torch.zeros_like(h))
    torch.testing.assert_close(out, zero_cells, atol=1e-5, rtol=0)


def test_nb201_genotype_is_the_argmax_per_edge_none_included():
    net = tiny("nb201")
    strengths = torch.full((6, 5), 0.1)
    genes = [3, 1, 0, 4, 2, 3]
    for e, g in enumerate(genes):
        strengths[e, g] = 0.6
    assert net.derive({"alpha": strengths}) == NB201Arch.from_genes(genes)
    assert net.skip_counts(NB201Arch.from_genes(genes)) == {"skips": 1}


def test_darts_genotype_keeps_the_two_strongest_non_none_inputs_per_node():
    net = tiny("darts")
    w = torch.full((14, 8), 0.05)
    # node 2 (edges 0, 1): both kept; node 3 (edges 2..4): edge 2 is mostly `none`, which does not count
    w[0, 4], w[1, 3] = 0.5, 0.4
    w[2, 0], w[2, 5] = 0.9, 0.06
    w[3, 6], w[4, 7] = 0.3, 0.2
    # node 4 (edges 5..8): 8 and 6 win; node 5 (edges 9..13): 13 and 9 win
    w[8, 1], w[6, 2], w[5, 4] = 0.7, 0.6, 0.1
    w[13, 3], w[9, 5], w[10, 5] = 0.8, 0.5, 0.49
    normal = [0] * 14
    normal[0], normal[1], normal[3], normal[4] = 4, 3, 6, 7
    normal[8], normal[6], normal[13], normal[9] = 1, 2, 3, 5
    reduce = torch.full((14, 8), 0.05)
    arch = net.derive({"normal": w, "reduce": reduce})
    assert arch.normal == tuple(normal)
    # all-equal strengths: the first two edges of each node, with the first non-none op (DARTS code's tie order)
    ties = [0] * 14
    for e in (0, 1, 2, 3, 5, 6, 9, 10):
        ties[e] = 1
    assert arch.reduce == tuple(ties)
    assert net.skip_counts(arch) == {"skips_normal": 2, "skips_reduce": 0}
    assert isinstance(arch, DartsArch)


def test_alpha_init_is_seeded_and_small():
    a, b, c = tiny(seed=1), tiny(seed=1), tiny(seed=2)
    assert torch.equal(a.arch["alpha"], b.arch["alpha"]) and not torch.equal(a.arch["alpha"], c.arch["alpha"])
    assert 1e-4 < float(a.arch["alpha"].detach().std()) < 1e-2


def test_unknown_space_has_no_mixed_op_supernet():
    with pytest.raises(UnknownNameError, match=r"unknown mixed-op supernet 'nb101'.*Available: darts, nb201"):
        create_mixed_supernet("nb101")


# ---- architects: closed forms ------------------------------------------------------------------
def _quadratic(dim=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    a_mat = m @ m.T / dim + torch.eye(dim, dtype=torch.float64)
    b = torch.randn(dim, generator=g, dtype=torch.float64)

    def loss(arch):
        a = torch.cat([arch["normal"].reshape(-1), arch["reduce"].reshape(-1)])
        return 0.5 * a @ a_mat @ a + b @ a

    arch = {"normal": torch.randn(2, 2, generator=g, dtype=torch.float64),
            "reduce": torch.randn(3, generator=g, dtype=torch.float64)}  # fmt: skip
    flat = torch.cat([arch["normal"].reshape(-1), arch["reduce"]])
    return loss, arch, a_mat, b, flat


def _flat(grads):
    return torch.cat([grads["normal"].reshape(-1), grads["reduce"].reshape(-1)])


@pytest.mark.parametrize("rho", [1e-2, 0.3])
def test_a2m_gradient_is_g1_plus_rho_h_g1_on_a_quadratic(rho):
    loss, arch, a_mat, b, a = _quadratic()
    g0 = a_mat @ a + b
    g1 = a_mat @ (a + rho * g0) + b
    expected = g1 + rho * a_mat @ g1
    got = _flat(create_architect("a2m", rho=rho, eps=1e-2).gradient(ArchStep(val_loss=loss, arch=arch)))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    fwd = _flat(create_architect("a2m", rho=rho, eps=1e-2, fd="forward").gradient(ArchStep(val_loss=loss, arch=arch)))
    torch.testing.assert_close(fwd, expected, rtol=0, atol=1e-5)  # exact too: the gradient is linear


def test_a2m_with_rho_zero_is_exactly_first_order_darts():
    net = tiny("nb201")
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 5, (8,))

    def loss(arch):
        with batch_stats_only(net):
            return F.cross_entropy(net(x, arch), y)

    darts = DartsArchitect().gradient(ArchStep(val_loss=loss, arch=net.arch_values()))
    a2m = a2m_gradient(loss, net.arch_values(), rho=0.0, eps=1e-2)
    assert torch.equal(darts["alpha"], a2m["alpha"])
    assert darts["alpha"].abs().sum() > 0


class _Tiny(nn.Module):
    """Losses quadratic in (w, alpha) jointly, with cross terms: the unrolled gradient has a closed form."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.w = nn.Parameter(torch.randn(3, generator=g, dtype=torch.float64))
        self.m_train = self._spd(5, g)
        self.m_val = self._spd(5, g)
        self.c_train = torch.randn(5, generator=g, dtype=torch.float64)
        self.c_val = torch.randn(5, generator=g, dtype=torch.float64)

    @staticmethod
    def _spd(n, g):
        m = torch.randn(n, n, generator=g, dtype=torch.float64)
        return m @ m.T / n + 0.5 * torch.eye(n, dtype=torch.float64)

    def loss(self, w, a, which):
        z = torch.cat([w, a])
        m, c = (self.m_train, self.c_train) if which == "train" else (self.m_val, self.c_val)
        return 0.5 * z @ m @ z + c @ z


def test_darts2_matches_the_unrolled_gradient_with_an_explicit_hessian():
    model = _Tiny()
    alpha = torch.tensor([0.3, -0.7], dtype=torch.float64)
    opt = torch.optim.SGD([model.w], lr=0.05, momentum=0.9, weight_decay=1e-2)
    model.loss(model.w, alpha, "train").backward()
    opt.step()  # gives w a momentum buffer, which the unrolled step uses
    opt.zero_grad()
    xi, mom, wd = 0.05, 0.9, 1e-2
    w = model.w.detach().clone()
    buf = opt.state[model.w]["momentum_buffer"]
    # the reference, by hand: w' = w - xi (m buf + dLtrain/dw + wd w); grad = dLval/da(w') - xi H_aw(Ltrain) dLval/dw'(w')
    z = torch.cat([w, alpha])
    dtrain = (model.m_train @ z + model.c_train)[:3]
    w1 = w - xi * (mom * buf + dtrain + wd * w)
    hess = torch.autograd.functional.hessian(lambda zz: model.loss(zz[:3], zz[3:], "train"), z)
    g_val = model.m_val @ torch.cat([w1, alpha]) + model.c_val
    expected = g_val[3:] - xi * hess[3:, :3] @ g_val[:3]
    step = ArchStep(
        val_loss=lambda arch: model.loss(model.w, arch["alpha"], "val"), arch={"alpha": alpha},
        train_loss=lambda arch: model.loss(model.w, arch["alpha"], "train"), weights=[model.w], optimizer=opt,
    )  # fmt: skip
    got = create_architect("darts2").gradient(step)["alpha"]
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    assert torch.equal(model.w.detach(), w)  # the weights are restored


def test_darts2_on_a_real_supernet_restores_weights_and_bn_statistics():
    net = tiny("nb201")
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 5, (8,))
    opt = torch.optim.SGD(net.weight_parameters(), lr=0.1, momentum=0.9)

    def loss(arch):
        with batch_stats_only(net):
            return F.cross_entropy(net(x, arch), y)

    before = {k: v.clone() for k, v in net.state_dict().items()}
    g = create_architect("darts2").gradient(ArchStep(loss, net.arch_values(), loss, net.weight_parameters(), opt))
    assert torch.isfinite(g["alpha"]).all() and g["alpha"].abs().sum() > 0
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


# ---- the registry -------------------------------------------------------------------------------
def test_registry_lists_suggests_and_checks_options():
    assert {"darts", "darts2", "a2m"} <= set(list_architects())
    assert ARCHITECTS.entry_point_group == "genas.architects"
    with pytest.raises(UnknownNameError, match=r"unknown architect 'a2n'\. Did you mean 'a2m'\?"):
        create_architect("a2n")
    with pytest.raises(ConfigError, match=r"architect 'darts' has no option 'rho'"):
        create_architect("darts", rho=0.1)
    for bad in (dict(rho=0.0), dict(eps=-1e-3)):
        with pytest.raises(ConfigError, match=r"parameter of architect a2m must be a float in the range \(0\.0, inf\)"):
            create_architect("a2m", **bad)


def test_a_registered_plugin_architect_is_used_by_name():
    @register_architect("test-sign", overwrite=True)
    class SignArchitect(Architect):
        """sign of the first-order gradient"""

        def gradient(self, step):
            return {k: g.sign() for k, g in arch_gradient(step.val_loss, step.arch).items()}

    try:
        out = create_architect("test-sign").gradient(ArchStep(lambda a: (a["x"] ** 3).sum(), {"x": torch.tensor([-2.0, 3.0])}))
        assert out["x"].tolist() == [1.0, 1.0]
        assert ARCHITECTS.entry("test-sign").description == "sign of the first-order gradient"
    finally:
        ARCHITECTS._entries.pop("test-sign")


# ---- the variant seams --------------------------------------------------------------------------
class _Ridge(Variant):
    """Adds c * ||alpha||^2 to the validation loss (a stand-in for beta-DARTS's regulariser)."""

    name = "ridge"

    def __init__(self, c):
        self.c = c

    def val_loss(self, loss_fn):
        return lambda arch: loss_fn(arch) + self.c * sum((a**2).sum() for a in arch.values())


def test_a_loss_variant_enters_all_four_a2m_gradients():
    loss, arch, a_mat, b, a = _quadratic()
    c, rho = 0.7, 0.1
    wrapped = VariantSet([_Ridge(c)]).val_loss(loss)
    a_eff = a_mat + 2 * c * torch.eye(len(a), dtype=torch.float64)  # the Hessian of the wrapped loss
    g0 = a_eff @ a + b
    g1 = a_eff @ (a + rho * g0) + b
    expected = g1 + rho * a_eff @ g1
    got = _flat(create_architect("a2m", rho=rho).gradient(ArchStep(val_loss=wrapped, arch=arch)))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    assert VariantSet().val_loss(loss) is loss  # no variant: plain DARTS
    with pytest.raises(ConfigError, match="given twice"):
        VariantSet([_Ridge(1.0), _Ridge(2.0)])


def test_architecture_passes_leave_bn_running_statistics_alone():
    net = tiny("nb201").train()
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 5, (8,))
    buffers = {k: v.clone() for k, v in net.named_buffers()}

    def loss(arch):
        with batch_stats_only(net):
            return F.cross_entropy(net(x, arch), y)

    with_ctx = arch_gradient(loss, net.arch_values())
    assert all(torch.equal(buffers[k], v) for k, v in net.named_buffers())
    plain = arch_gradient(lambda arch: F.cross_entropy(net(x, arch), y), net.arch_values())  # updates the stats
    torch.testing.assert_close(with_ctx["alpha"], plain["alpha"], rtol=0, atol=0)  # same batch statistics
    assert not all(torch.equal(buffers[k], v) for k, v in net.named_buffers())
