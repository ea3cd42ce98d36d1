import math

import pytest
import torch

from lacuna.engine import select as sel


def logits_from(rows):
    return torch.log(torch.tensor(rows, dtype=torch.float32))


def test_suppress_forbids_special_tokens():
    out = sel.suppress(torch.zeros(2, 5), torch.tensor([0, 3]))
    assert torch.isinf(out[:, [0, 3]]).all() and not torch.isinf(out[:, [1, 2, 4]]).any()


def test_top_k_keeps_the_k_best():
    out = sel.filter_top_k_top_p(logits_from([[0.1, 0.4, 0.2, 0.3]]), top_k=2)
    assert torch.isfinite(out[0]).tolist() == [False, True, False, True]


def test_top_p_keeps_the_smallest_nucleus_and_always_the_best():
    logits = logits_from([[0.5, 0.3, 0.15, 0.05]])
    assert torch.isfinite(sel.filter_top_k_top_p(logits, top_p=0.7)[0]).tolist() == [True, True, False, False]
    assert torch.isfinite(sel.filter_top_k_top_p(logits, top_p=0.01)[0]).tolist() == [True, False, False, False]
    assert torch.isfinite(sel.filter_top_k_top_p(logits, top_p=1.0)[0]).all()


def test_greedy_sampling_is_argmax():
    logits = logits_from([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1]])
    assert sel.sample_tokens(logits, 0.0, None).tolist() == [1, 0]


def test_gumbel_sampling_matches_the_softmax_distribution():
    probs = [0.6, 0.3, 0.1]
    logits = logits_from([probs]).repeat(20000, 1)
    gen = torch.Generator().manual_seed(0)
    tokens = sel.sample_tokens(logits, 1.0, gen)
    freq = torch.bincount(tokens, minlength=3).double() / tokens.numel()
    assert torch.allclose(freq, torch.tensor(probs, dtype=torch.float64), atol=0.015)


def test_sampling_never_picks_a_filtered_token():
    logits = sel.filter_top_k_top_p(logits_from([[0.4, 0.35, 0.25]]).repeat(2000, 1), top_k=2)
    tokens = sel.sample_tokens(logits, 5.0, torch.Generator().manual_seed(1))
    assert set(tokens.tolist()) <= {0, 1}


def test_confidence_margin_and_entropy():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25]])
    assert sel.token_confidence(probs, torch.tensor([0, 1])).tolist() == pytest.approx([0.7, 0.35])
    assert sel.margin(probs).tolist() == pytest.approx([0.5, 0.05])
    h0 = -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1))
    assert sel.neg_entropy(probs)[0].item() == pytest.approx(-h0, rel=1e-5)
    assert sel.neg_entropy(probs)[0] > sel.neg_entropy(probs)[1]


def test_pick_top_respects_eligibility():
    scores = torch.tensor([0.9, 0.1, 0.8, 0.5])
    eligible = torch.tensor([False, True, True, True])
    assert sorted(sel.pick_top(scores, eligible, 2).tolist()) == [2, 3]
    assert sel.pick_top(scores, torch.zeros(4, dtype=torch.bool), 2).numel() == 0


def test_pick_threshold_commits_all_confident_and_at_least_one():
    scores = torch.tensor([0.95, 0.2, 0.91, 0.5])
    everyone = torch.ones(4, dtype=torch.bool)
    assert sorted(sel.pick_threshold(scores, everyone, 0.9).tolist()) == [0, 2]
    assert sel.pick_threshold(torch.tensor([0.1, 0.3]), torch.ones(2, dtype=torch.bool), 0.9).tolist() == [1]
    assert len(sel.pick_threshold(scores, everyone, 0.9, at_least=3)) == 3


def test_pick_bernoulli_rate():
    gen = torch.Generator().manual_seed(0)
    chosen = sel.pick_bernoulli(torch.ones(10000, dtype=torch.bool), 0.25, gen)
    assert 0.23 < chosen.numel() / 10000 < 0.27
    assert sel.pick_bernoulli(torch.zeros(5, dtype=torch.bool), 1.0, gen).numel() == 0
