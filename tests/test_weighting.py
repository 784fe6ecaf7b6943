"""Label-free weighting of scorer sums (``weighting: zscore | rank``): hand-computed references, errors."""

from __future__ import annotations

import numpy as np
import pytest

from genas.errors import ConfigError
from scorers import create_scorer


@pytest.fixture(scope="module")
def sample(ctx):
    rng = np.random.default_rng(7)
    return [ctx.space.sample(rng) for _ in range(6)]


def _direct(name, archs, ctx):
    """A term's direction-adjusted normalised value, computed without the sum."""
    s = create_scorer(name)
    v = s.normalized(np.asarray(s.score(archs, ctx), dtype=np.float64))
    return v if s.higher_is_better else -v


def test_zscore_is_each_term_standardised_on_the_calibration_sample(ctx, sample):
    combo = create_scorer("angle+0.5*loss", weighting="zscore", calibration=10)
    calib = combo.calibration_sample(ctx)
    assert len(calib) == 10 and calib == create_scorer("angle+loss", weighting="rank", calibration=10).calibration_sample(ctx)
    want = np.zeros(len(sample))
    for coef, name in ((1.0, "angle"), (0.5, "loss")):
        ref = _direct(name, calib, ctx)
        want += coef * (_direct(name, sample, ctx) - ref.mean()) / ref.std(ddof=1)
    assert np.allclose(combo.score(sample, ctx), want, rtol=1e-12, atol=1e-12)


def test_rank_is_the_interpolated_midrank_cdf(ctx, sample):
    combo = create_scorer("angle+loss", weighting="rank", calibration=9)
    calib = combo.calibration_sample(ctx)
    want = np.zeros(len(sample))
    for name in ("angle", "loss"):
        ref, val = np.sort(_direct(name, calib, ctx)), _direct(name, sample, ctx)
        assert len(np.unique(ref)) == len(ref)  # no ties here: the midrank of the i-th value is (i - 1/2) / n
        pts = (np.arange(len(ref)) + 0.5) / len(ref)
        slope = 1 / (ref[-1] - ref[0])
        for j, v in enumerate(val):
            if v > ref[-1]:
                want[j] += pts[-1] + (v - ref[-1]) * slope
            elif v < ref[0]:
                want[j] += pts[0] - (ref[0] - v) * slope
            else:
                i = max(0, int(np.searchsorted(ref, v)) - 1)
                i = min(i, len(ref) - 2)
                want[j] += pts[i] + (v - ref[i]) / (ref[i + 1] - ref[i]) * (pts[i + 1] - pts[i])
    assert np.allclose(combo.score(sample, ctx), want, rtol=1e-12, atol=1e-12)
    # a calibration architecture scores its own midrank: the best of 9 scores 17/18 on that term
    own = create_scorer("angle").score(calib, ctx)
    best = calib[int(np.argmax(own))]
    assert create_scorer("1*angle", weighting="rank", calibration=9).score([best], ctx)[0] == pytest.approx(17 / 18)


def test_interpolated_cdf_by_hand():
    from scorers.combine import interpolated_cdf

    ref = np.array([4.0, 1.0, 2.0, 2.0])  # sorted 1, 2, 2, 4: midranks 1/8, (2/8 + 3/8 ... ) = 4/8, 7/8
    got = interpolated_cdf(ref, np.array([1.0, 1.5, 2.0, 3.0, 4.0, 7.0, 0.0]))
    # 1.5 halfway from 1/8 to 4/8; 3 halfway from 4/8 to 7/8; beyond: slope 1 / (4 - 1)
    assert np.allclose(got, [1 / 8, 5 / 16, 4 / 8, 11 / 16, 7 / 8, 7 / 8 + 1, 1 / 8 - 1 / 3])
    assert np.all(np.diff(interpolated_cdf(ref, np.linspace(-5, 10, 50))) > 0)  # strictly increasing: no ties


def test_the_scales_do_not_depend_on_which_candidates_are_scored(ctx, sample):
    combo = create_scorer("angle+flatness", weighting="zscore", calibration=8)
    together = combo.score(sample, ctx)
    alone = np.array([combo.score([a], ctx)[0] for a in reversed(sample)])[::-1]
    assert np.array_equal(together, alone)


@pytest.mark.parametrize("expr, options, weighting", [
    ("angle+flatness", {}, "rank"),  # no scales given: measured on the calibration sample
    ("angle-loss", {}, "rank"),
    ("angle+flatness", {"gamma": 16}, "fixed"),  # the paper's gamma: the paper's weighting
    ("accuracy+0.5*synflow", {}, "fixed"),  # the user's own coefficients are the scales
    ("angle+flatness", {"weighting": "zscore"}, "zscore"),
])  # fmt: skip
def test_the_default_weighting_is_rank_unless_the_expression_sets_its_scales(expr, options, weighting):
    combo = create_scorer(expr, **options)
    assert combo.weighting == weighting
    assert [w for w, _ in combo.parts][:2] == ([1.0, 16.0] if options.get("gamma") else [1.0, 0.5] if "0.5" in expr
                                               else [1.0, -1.0] if "-" in expr else [1.0, 1.0])  # fmt: skip


def test_fixed_is_the_paper_sum_unchanged(ctx, sample):
    fixed = create_scorer("angle+flatness", gamma=4).score(sample, ctx)
    f = create_scorer("flatness")
    want = _direct("angle", sample, ctx) + 4 * f.normalized(f.score(sample, ctx))
    assert np.allclose(fixed, want)


@pytest.mark.parametrize("expr, options, match", [
    ("angle", {"weighting": "zscore"}, r"option 'weighting' weights the terms of a sum .*'angle' is one scorer"),
    ("angle", {"calibration": 16}, r"option 'calibration' weights the terms of a sum"),
    ("angle+flatness", {"weighting": "zscore", "gamma": 8}, r"option 'gamma' is the flatness weight of weighting 'fixed'"),
    ("angle+flatness", {"weighting": "fixed", "calibration": 16},
     r"option 'calibration' applies to weighting 'zscore' or 'rank', not 'fixed' \(scorer"),
    ("angle+flatness", {"gamma": 8, "calibration": 16}, r"not 'fixed' \(chosen because the expression gives its own"),
    ("angle+0.5*flatness", {"calibration": 16}, r"not 'fixed' \(chosen because"),
    ("angle+flatness", {"weighting": "zscore", "calibration": 3}, r"'calibration' .* range \[8, 100000\]\. Got 3"),
    ("angle+flatness", {"weighting": "softmax"}, r"'weighting' .*'auto', 'fixed', 'rank', 'zscore'.*softmax"),
    ("0*angle+0*flatness", {}, r"every term of scorer '0\*angle\+0\*flatness' has weight 0"),
    ("angle+flatness", {"gamma": 0, "weighting": "fixed"}, None),
])  # fmt: skip
def test_bad_weighting_options(expr, options, match):
    if match is None:
        assert [w for w, _ in create_scorer(expr, **options).parts] == [1.0, 0.0]
        return
    with pytest.raises(ConfigError, match=match):
        create_scorer(expr, **options)


def test_a_term_without_spread_is_one_line(ctx, sample):
    from scorers import register_scorer
    from scorers.base import Needs

    register_scorer("test_constant", needs=Needs(supernet=False), overwrite=True)(lambda arch, c: 3.0)
    const = create_scorer("angle+test_constant", weighting="zscore", calibration=8)
    with pytest.raises(ConfigError, match=r"term 'test_constant' has no spread .* over the 8 calibration architectures"):
        const.score(sample, ctx)


def test_the_cli_refuses_a_weighting_that_does_not_apply(tiny_run, capsys):
    from genas.cli import run_cli
    from evolution.cli import main

    code = run_cli(main, ["--supernet", str(tiny_run), "--scorer", "accuracy", "--score.options.weighting", "zscore",
                          "--check"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "weighting" in err, err
