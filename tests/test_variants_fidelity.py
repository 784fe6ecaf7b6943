"""The variants against the code behind the A2M paper's rows (issue 28): each form computed by hand.

The references here wire the cells out node by node from the edges' own mixed ops, so a mistake in
the variants' seams (``cell_fn``, ``edge_fn``) or in the wiring shows up as a mismatch.
"""

from __future__ import annotations

import pytest
import torch

from genas.differentiable.config import DifferentiableConfig
from genas.differentiable.mixed import EdgeRef, mixed_op
from genas.differentiable.variants import BetaDecay, NeighbourhoodAware, channel_shuffle, create_variants
from genas.errors import ConfigError
from genas.spaces.nb201 import NB201_EDGES
from tests.test_variants import batches, loss_of, tiny


def hand_nb201_cell(x, edge, extra=lambda e, y: 0):
    """NB201 node j = sum over its incoming edges (j <- i) of ``edge(e, node_i) + extra(e, node_i)``."""
    nodes = [x]
    for j in (1, 2, 3):
        nodes.append(sum(edge(e, nodes[i]) + extra(e, nodes[i]) for e, (to, i) in enumerate(NB201_EDGES) if to == j))
    return nodes[3]


def plain_edge(model, cell):
    w = model.mixing_weights()
    return lambda e, y: mixed_op(cell.edges[e], y, w, EdgeRef("alpha", e))


def seam_edge(model, cell):
    w = model.mixing_weights()
    return lambda e, y: model.edge_fn(cell.edges[e], y, w, model.edge_ref(cell, e))


# ---- DARTS- -------------------------------------------------------------------------------------
def test_darts_minus_has_its_own_factorized_reduce_on_every_stride_two_edge():
    model = tiny("darts", channels=8)
    v = create_variants(["darts-minus"])
    v.setup(model)
    v.start_epoch(2, 8)  # beta = 0.75
    reduce_cells = [c for c in model.search_cells() if c.reduction]
    assert len(reduce_cells) == 2 and len(model.extra) == 2 * 8  # DARTS reduce cell: 8 edges leave nodes 0 and 1
    assert len({id(m) for m in model.extra.values()}) == 16
    i = model.search_cells().index(reduce_cells[0])
    c = reduce_cells[0].channels
    assert sum(p.numel() for p in model.extra[f"aux_skip_{i}_0"].parameters()) == c * c  # two 1x1 convs C -> C/2
    w = model.mixing_weights()
    x = torch.randn(2, c, 8, 8)
    for e in (0, 1, 3):  # stride-2 edges, each its own module
        ref = model.edge_ref(reduce_cells[0], e)
        assert ref.stride == 2
        want = mixed_op(reduce_cells[0].edges[e], x, w, ref) + 0.75 * model.extra[f"aux_skip_{i}_{e}"](x)
        torch.testing.assert_close(model.edge_fn(reduce_cells[0].edges[e], x, w, ref), want)
    with torch.no_grad():
        model.extra[f"aux_skip_{i}_0"].conv_1.weight.add_(1.0)  # another edge's skip does not move
        out3 = model.edge_fn(reduce_cells[0].edges[3], x, w, model.edge_ref(reduce_cells[0], 3))
    torch.testing.assert_close(out3, mixed_op(reduce_cells[0].edges[3], x, w, model.edge_ref(reduce_cells[0], 3))
                               + 0.75 * model.extra[f"aux_skip_{i}_3"](x))  # fmt: skip


def test_darts_minus_cell_source_adds_the_cell_input_on_every_edge():
    model = tiny(channels=4)
    v = create_variants(["darts-minus"], {"source": "cell"})
    v.setup(model)
    v.start_epoch(5, 20)  # beta = 0.75
    cell = model.search_cells()[0]
    x = torch.randn(2, 4, 8, 8)
    got = model.cell_fn(cell, x, seam_edge(model, cell))
    want = hand_nb201_cell(x, plain_edge(model, cell), extra=lambda e, y: 0.75 * x)  # the cell's input, not y
    torch.testing.assert_close(got, want)
    assert len(model.extra) == 0  # NB201 is all stride 1: no factorized reduce
    edge_form = tiny(channels=4)
    create_variants(["darts-minus"]).setup(edge_form)
    assert not torch.allclose(edge_form(torch.ones(1, 3, 8, 8)), model(torch.ones(1, 3, 8, 8)))


# ---- PC-DARTS -----------------------------------------------------------------------------------
def test_pc_asquaredm_form_runs_the_cell_on_the_first_channels_once_without_betas():
    model = tiny(channels=8)
    v = create_variants(["pc"], {"k": 2, "form": "asquaredm"})
    v.setup(model)
    assert v.options()["pc"]["edge_norm"] is False and set(model.arch_values()) == {"alpha"}  # no betas
    cell = model.search_cells()[0]
    assert next(iter(cell.edges[0].values())).__class__ and cell.channels == 8
    x = torch.randn(2, 8, 8, 8)
    got = model.cell_fn(cell, x, seam_edge(model, cell))
    inner = hand_nb201_cell(x[:, :4], plain_edge(model, cell))  # every edge sees the same 4 channels
    want = torch.cat([inner, x[:, 4:]], dim=1).view(2, 2, 4, 8, 8).transpose(1, 2).reshape(2, 8, 8, 8)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(channel_shuffle(torch.cat([inner, x[:, 4:]], 1), 2), want)
    per_edge = tiny(channels=8)
    create_variants(["pc"], {"k": 2}).setup(per_edge)
    assert {"alpha", "alpha_beta"} <= set(per_edge.arch_values())  # the PC-DARTS form keeps its betas


@pytest.mark.parametrize("space, options, needle", [
    ("nb201", {"form": "asquaredm", "edge_norm": True}, "edge_norm true is not defined for form 'asquaredm'"),
    ("darts", {"form": "asquaredm"}, "defined only on search space 'nb201'"),
    ("nb201", {"form": "per-cell"}, "form"),
])  # fmt: skip
def test_pc_forms_the_reference_code_does_not_define_are_refused(space, options, needle):
    with pytest.raises(ConfigError, match=needle):
        create_variants(["pc"], options).setup(tiny(space, channels=8))


def test_darts_minus_source_cell_is_refused_where_the_reference_code_has_no_such_form():
    with pytest.raises(ConfigError, match="defined only on search space 'nb201'"):
        create_variants(["darts-minus"], {"source": "cell"}).setup(tiny("darts"))
    with pytest.raises(ConfigError, match="source 'cell' with pc form 'asquaredm'"):
        create_variants(["pc", "darts-minus"], {"pc": {"form": "asquaredm"}, "darts-minus": {"source": "cell"}})


# ---- beta-DARTS ---------------------------------------------------------------------------------
def test_beta_weighs_the_normal_and_reduce_terms_as_the_a2m_appendix():
    model = tiny("darts")
    v = BetaDecay(normal_weight=0.4, reduce_weight=1.6)  # AsquaredM --w_nor 0.2
    v.setup(model)
    arch = {k: torch.randn_like(a) for k, a in model.arch_values().items()}

    def lse_mean(a):  # mean over edges of log(sum_o exp(a_eo)), written out
        return sum(float(torch.log(torch.exp(row).sum())) for row in a) / len(a)

    want = 0.4 * lse_mean(arch["normal"]) + 1.6 * lse_mean(arch["reduce"])
    assert float(v.regulariser(arch)) == pytest.approx(want, rel=1e-6)
    default = BetaDecay()
    default.setup(model)
    assert float(default.regulariser(arch)) == pytest.approx(lse_mean(arch["normal"]) + lse_mean(arch["reduce"]), rel=1e-6)
    with pytest.raises(ConfigError, match="one alpha group"):
        BetaDecay(normal_weight=0.5).setup(tiny())


# ---- validation augmentation per method -----------------------------------------------------------
@pytest.mark.parametrize("space, variants, set_to, want", [
    ("nb201", [], None, False),  # DARTS and A2-DARTS on NB201: off (A2M paper, section 5.3)
    ("nb201", ["beta"], None, True),  # AsquaredM's variant scripts keep its default, on
    ("nb201", ["pc"], None, True),
    ("darts", [], None, True),  # the DARTS-space search always augments
    ("nb201", ["beta"], False, False),  # set: as set
    ("nb201", [], True, True),
])  # fmt: skip
def test_validation_augmentation_per_method(space, variants, set_to, want):
    assert DifferentiableConfig(valid_augment=set_to).valid_augment_for(space, variants) is want


# ---- NA -----------------------------------------------------------------------------------------
def test_na_margin_shifts_the_drawn_op_and_stays_differentiable():
    a = torch.tensor([[0.1, 0.5, -0.2], [0.3, 0.0, 0.2]], requires_grad=True)
    out = NeighbourhoodAware.neighbour({"alpha": a}, [("alpha", 1, 0, 2)], margin=2.0)["alpha"]
    want = torch.tensor([[0.1, 0.5, -0.2], [0.2, 0.0, 2.3]])  # row 1: logits 0 and 2 swapped, +2 on op 2
    torch.testing.assert_close(out, want)
    out.sum().backward()
    torch.testing.assert_close(a.grad, torch.ones_like(a))  # a permutation plus a constant: gradient 1 everywhere


def test_na_term_is_negligible_at_initialisation_and_acts_with_a_margin():
    """The measurement behind docs/a2m.md: at 1e-3 * randn alphas a swap moves the loss by ~1e-5."""
    model = tiny()
    loss = loss_of(model, batches(1, size=16)[0])
    arch = model.arch_values()
    gaps = {}
    for margin in (0.0, 2.0):
        v = NeighbourhoodAware(size=1, samples=3, margin=margin)
        v.generator = torch.Generator().manual_seed(0)
        v.setup(model)
        with torch.no_grad():
            gaps[margin] = abs(float(v.val_loss(loss)(arch)) - float(loss(arch)))
    assert gaps[0.0] < 1e-3 and gaps[2.0] > 10 * gaps[0.0]
