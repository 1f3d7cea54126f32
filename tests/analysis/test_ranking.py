"""Bit scores and their comparison with a campaign (no TensorFlow needed)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from fkhw.analysis.ranking import (SCORES, bit_deltas, bit_scores, compare, expected_random_injections, found_curve,
                                   injections_to_find, msb_first, read_campaign, site_params, spearman)
from fkhw.faults.scores import RankingError, order_from_scores, write_scores_csv
from fkhw.faults.sites import SiteSpace, flip


@pytest.fixture(scope="module")
def ir():
    from fkhw.model.bundle import load_model

    return load_model("econt-bol").ir


@pytest.fixture(scope="module")
def space(ir):
    return SiteSpace.of(ir)


def _values(ir, space):
    """Quantized parameter values, flat in site order."""
    out = []
    for t in space.tensors:
        layer = ir.layers[t.layer_pos]
        out.append(getattr(layer, t.tensor).reshape(-1) * 2.0 ** -t.fmt.frac)
    return np.concatenate(out)


# --- sites <-> parameters ---------------------------------------------------


def test_site_params_follow_the_site_formula(space, bol_ir):
    param, bit, bits = site_params(space)
    assert param.size == space.n_sites == bol_ir.n_param_bits()
    start = 0
    for t in space.tensors:
        ids = t.offset + np.arange(t.size) * t.fmt.bits
        np.testing.assert_array_equal(param[ids], start + np.arange(t.size))
        np.testing.assert_array_equal(bit[ids + t.fmt.bits - 1], t.fmt.bits - 1)
        start += t.size


def test_bit_delta_is_the_change_of_the_quantized_value_when_the_bit_flips(ir, space):
    d = bit_deltas(ir, space)
    base = _values(ir, space)
    param, _, _ = site_params(space)
    for s in (0, 1, 4, 361, 5000, space.n_sites - 1):
        flipped = _values(flip(ir, space, s), space)
        changed = np.flatnonzero(flipped != base)
        assert changed.tolist() == [param[s]]
        assert d[s] == flipped[param[s]] - base[param[s]]
    # 5-bit codes with 3 fractional bits: the sign bit moves a value by 2.0,
    # the LSB by 1/8
    _, bit, _ = site_params(space)
    assert set(np.abs(d[bit == 0])) == {2.0}
    assert set(np.abs(d[bit == 4])) == {0.125}


# --- scores -------------------------------------------------------------------


def test_taylor2_is_exact_for_a_quadratic_loss(ir, space):
    """For L(w) = g.w + w.H.w/2 a single-parameter step d changes L by
    exactly g_p d + H_pp d^2 / 2: taylor2 must equal the true change."""
    rng = np.random.default_rng(0)
    n = sum(t.size for t in space.tensors)
    A = rng.standard_normal((n, 8))
    H = A @ A.T / 8 - 0.3 * np.eye(n)
    w0 = _values(ir, space)
    c = rng.standard_normal(n)

    def loss(w):
        return c @ w + 0.5 * w @ H @ w

    grad = c + H @ w0
    scores = bit_scores(ir, grad, np.diag(H).copy(), np.array([1.0]), np.ones((1, n)) / np.sqrt(n))
    for s in rng.choice(space.n_sites, 25, replace=False):
        true = loss(_values(flip(ir, space, int(s)), space)) - loss(w0)
        assert scores["taylor2"][s] == pytest.approx(true, rel=1e-9, abs=1e-12)
        assert scores["taylor2_abs"][s] == pytest.approx(abs(true), rel=1e-9, abs=1e-12)
    np.testing.assert_allclose(scores["taylor1"] + scores["curvature"], scores["taylor2"])


def test_every_score_ranks_every_site_and_is_reproducible(ir, space):
    n = sum(t.size for t in space.tensors)
    rng = np.random.default_rng(1)
    args = (ir, rng.standard_normal(n), rng.standard_normal(n), np.array([2.0, -1.0]), rng.standard_normal((2, n)))
    a, b = bit_scores(*args, seed=3), bit_scores(*args, seed=3)
    assert tuple(a) == SCORES
    for name in SCORES:
        assert a[name].shape == (space.n_sites,) and np.isfinite(a[name]).all()
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(a["random"], bit_scores(*args, seed=4)["random"])


def test_msb_first_puts_every_bit0_before_any_bit1_then_orders_by_parameter_score(space):
    n = sum(t.size for t in space.tensors)
    pscore = np.random.default_rng(2).random(n)
    s = msb_first(pscore, space)
    param, bit, _ = site_params(space)
    order = np.argsort(-s, kind="stable")
    assert np.all(np.diff(bit[order]) >= 0)
    first_level = order[bit[order] == 0]
    np.testing.assert_array_equal(param[first_level], np.argsort(-pscore, kind="stable"))


def test_hessian_eigen_is_fkeras_sum_of_eigenvalue_weighted_eigenvector_magnitudes(ir, space):
    n = sum(t.size for t in space.tensors)
    vals = np.array([3.0, -2.0])
    vecs = np.zeros((2, n))
    vecs[0, 5], vecs[1, 7], vecs[0, 9], vecs[1, 9] = 0.5, 1.0, 0.1, 0.1
    s = bit_scores(ir, np.zeros(n), np.zeros(n), vals, vecs)["hessian_eigen"]
    param, bit, _ = site_params(space)
    top = np.argsort(-s, kind="stable")[:3]
    # parameter scores: p7 = 2.0, p5 = 1.5, p9 = 0.3 + 0.2 = 0.5: their MSBs come first
    assert param[top].tolist() == [7, 5, 9] and bit[top].tolist() == [0, 0, 0]


def test_msb_score_orders_like_the_campaigns_msb_order(ir, space):
    from fkhw.campaign.orders import site_order

    n = sum(t.size for t in space.tensors)
    scores = bit_scores(ir, np.zeros(n), np.zeros(n), np.array([1.0]), np.ones((1, n)))
    from fkhw.faults.scores import order_by

    np.testing.assert_array_equal(order_by(np.arange(space.n_sites), scores["msb"]), site_order("msb", space, 0))


# --- scores table -> injection order ------------------------------------------


def test_order_from_scores_is_highest_first_with_ties_by_site(tmp_path):
    write_scores_csv(tmp_path / "scores.csv", {"a": np.array([0.5, 2.0, 0.5, 9.0, -1.0]), "b": np.arange(5.0)})
    assert order_from_scores(tmp_path / "scores.csv", "a").tolist() == [3, 1, 0, 2, 4]
    assert order_from_scores(tmp_path, "b").tolist() == [4, 3, 2, 1, 0]  # a folder holding scores.csv


def test_order_from_scores_names_the_missing_file_or_column(tmp_path):
    with pytest.raises(RankingError, match=r"nope\.csv: no scores table"):
        order_from_scores(tmp_path / "nope.csv", "taylor2")
    write_scores_csv(tmp_path / "scores.csv", {"a": np.zeros(3)})
    with pytest.raises(RankingError, match=r"no column 'taylor2' \(it has a\)"):
        order_from_scores(tmp_path / "scores.csv", "taylor2")


# --- curves and the table -------------------------------------------------------


def test_oracle_finds_all_sensitive_bits_in_exactly_as_many_injections():
    emd = np.array([1.2, 0.9, 1.0, 1.5, 1.06, 0.99, 1.3])
    sites = np.arange(7) * 10
    cmp = compare(sites, emd, sites, {"worst": -emd}, thresholds=(1.05,))
    rows = {r["score"]: r for r in cmp.rows}
    assert rows["oracle"]["n_sensitive"] == 4
    assert (rows["oracle"]["inj_50"], rows["oracle"]["inj_90"], rows["oracle"]["inj_100"]) == (2, 4, 4)
    # the reversed order finds the 4 sensitive bits last
    assert (rows["worst"]["inj_50"], rows["worst"]["inj_100"]) == (5, 7)
    assert rows["oracle"]["spearman"] == 1.0 and rows["worst"]["spearman"] == pytest.approx(-1.0)


def test_injections_to_find_counts_to_the_ceiling_of_the_fraction():
    found = found_curve(np.array([5, 1, 7, 2, 9, 3]), np.array([1, 2, 3]))
    assert found.tolist() == [0, 1, 1, 2, 2, 3]
    assert injections_to_find(found, 3, 0.5) == 4  # ceil(1.5) = 2 found after 4
    assert injections_to_find(found, 3, 0.9) == 6
    assert injections_to_find(found, 0, 0.9) is None


def test_expected_random_injections_matches_simulation():
    n, s = 200, 13
    rng = np.random.default_rng(0)
    sims = [injections_to_find(found_curve(rng.permutation(n), np.arange(s)), s, 0.9) for _ in range(4000)]
    assert np.mean(sims) == pytest.approx(expected_random_injections(n, s, 0.9), rel=0.02)


def test_spearman_of_a_constant_is_undefined():
    assert np.isnan(spearman(np.ones(5), np.arange(5.0)))
    assert spearman(np.arange(5.0), np.arange(5.0) ** 3) == pytest.approx(1.0)


def _campaign(path, sites, emd_norm):
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["site", "layer", "tensor", "index", "bit", "emd", "emd_norm", "n_changed"])
        for s, e in zip(sites, emd_norm):
            w.writerow([s, "l", "kernel", s // 5, s % 5, 1.4 * e, e, 1])


def test_rank_command_writes_the_table_and_curves(tmp_path, capsys):
    from fkhw.cli import main

    rng = np.random.default_rng(0)
    n = 400
    emd = np.exp(rng.normal(0, 0.05, n))
    (tmp_path / "camp").mkdir()
    _campaign(tmp_path / "camp" / "campaign.csv", np.arange(n), emd)
    (tmp_path / "h").mkdir()
    write_scores_csv(tmp_path / "h" / "scores.csv", {"good": emd + rng.normal(0, 0.01, n), "random": rng.random(n)})
    rc = main(["rank", "--campaign", str(tmp_path / "camp"), "--scores", str(tmp_path / "h"),
               "--out", str(tmp_path / "r"), "--threshold", "1.02"])
    assert rc == 0
    assert (tmp_path / "r" / "rank.png").stat().st_size > 10000
    with (tmp_path / "r" / "rank.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert sorted({float(r["threshold"]) for r in rows}) == [1.0, 1.02, 1.05, 1.1]
    assert {r["score"] for r in rows} == {"good", "random", "oracle", "random_expected"}
    by = {(float(r["threshold"]), r["score"]): r for r in rows}
    for t in (1.0, 1.02, 1.05, 1.1):
        s = int((emd > t).sum())
        assert int(by[(t, "oracle")]["n_sensitive"]) == s
        assert int(by[(t, "oracle")]["inj_100"]) == s
        assert int(by[(t, "good")]["inj_90"]) < float(by[(t, "random_expected")]["inj_90"])
    assert "emd_norm > 1.05" in capsys.readouterr().out


def test_rank_command_errors_name_the_file(tmp_path, capsys):
    from fkhw.cli import main

    rc = main(["rank", "--campaign", str(tmp_path / "none"), "--scores", str(tmp_path), "--out", str(tmp_path / "r")])
    assert rc == 2
    assert f"{tmp_path / 'none'}: no campaign table" in capsys.readouterr().err
    _campaign(tmp_path / "c.csv", [0, 1], [1.0, 1.2])
    rc = main(["rank", "--campaign", str(tmp_path / "c.csv"), "--scores", str(tmp_path), "--out", str(tmp_path / "r")])
    assert rc == 2
    assert "scores.csv: no scores table" in capsys.readouterr().err


def test_campaign_sites_without_scores_are_left_out_and_duplicates_refused(tmp_path):
    _campaign(tmp_path / "c.csv", [0, 1, 2, 50], [1.0, 1.2, 1.3, 2.0])
    sites, emd = read_campaign(tmp_path / "c.csv")
    cmp = compare(sites, emd, np.arange(3), {"a": np.arange(3.0)}, thresholds=(1.1,))
    assert cmp.missing == 1 and cmp.n_sites == 3
    _campaign(tmp_path / "d.csv", [0, 0], [1.0, 1.2])
    with pytest.raises(RankingError, match="listed twice"):
        read_campaign(tmp_path / "d.csv")
