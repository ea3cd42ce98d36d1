"""Fills pinned token for token across every sampling policy (issue 22, part 3).

Recorded on the sampler as it was before its policies became objects
(engine.policies); the refactor, and any later one that claims to change no
behaviour, must give the same event streams: the same commits in the same
steps, with the same confidences, forward-pass counts and final text. Each
case is one seeded run (or a set of candidates) of a tiny seeded model on the
CPU in float32 and one thread; its fingerprint is a digest of every event it
yields. "ancestral_recompute" was recorded under its old name,
"ancestral_nocache".

A change that means to alter what some policy does updates the pins it
changes, and says so.
"""
from __future__ import annotations

import hashlib

import pytest

from lacuna.engine import InfillRequest, Span, stream_infill
from lacuna.engine.sampler import stream_candidates
from tests.support.dit_tiny import build_tiny_mdlm, build_tiny_sedd

TEXT = "In the beginning God created the heaven and the earth. And the earth was without form, and void."
SPANS = (Span(0, 2), Span(33, 39), Span(54, 54, length=5))
EDIT = (Span(17, 39, strength=0.5), Span(54, 54, length=4))
POLICIES = ("low_confidence", "margin", "entropy", "random", "threshold",
            "ancestral", "ancestral_recompute", "ancestral_analytic")


def _fingerprint(stream) -> str:
    digest = hashlib.sha256()
    for events in stream:
        for ev in events:
            if ev is None:
                digest.update(b"-")
                continue
            commits = [(c.index, c.span, c.token_id, c.text, repr(c.confidence)) for c in ev.committed]
            digest.update(repr((ev.step, ev.steps, ev.nfe, commits, ev.done)).encode())
            if ev.result is not None:
                digest.update(repr((ev.result.text, ev.result.nfe, ev.result.steps)).encode())
    return digest.hexdigest()[:16]


def _single(model, **kw) -> str:
    request = InfillRequest(text=TEXT, **{"spans": SPANS, **kw})
    return _fingerprint((ev,) for ev in stream_infill(model, request))


def _candidates(model, seeds, **kw) -> str:
    request = InfillRequest(text=TEXT, **{"spans": SPANS, **kw})
    return _fingerprint(stream_candidates(model, request, seeds))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # tiny models run fastest on one thread, the more so on a busy machine
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def mdlm(tmp_path_factory):
    from lacuna.engine import load_model

    folder = build_tiny_mdlm(tmp_path_factory.mktemp("mdlm"), with_tokenizer=True, vocab_size=401)
    return load_model(str(folder), device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def sedd(tmp_path_factory):
    from lacuna.engine import load_model

    folder = build_tiny_sedd(tmp_path_factory.mktemp("sedd"), with_tokenizer=True, tokens=400)
    return load_model(str(folder), device="cpu", dtype="float32")


# (policy, temperature) -> fingerprint, on the tiny ModernBERT (tests/conftest.py)
BERT_KW = dict(steps=7, seed=7)
BERT = {
    ('ancestral', 0.0): '622b2d164769ec59',
    ('ancestral', 0.9): '2e6c73e42e728c2a',
    ('ancestral_analytic', 0.0): '622b2d164769ec59',
    ('ancestral_analytic', 0.9): '2e6c73e42e728c2a',
    ('ancestral_recompute', 0.0): '4634f95b1965b087',
    ('ancestral_recompute', 0.9): 'f9e591dfca96c2f9',
    ('entropy', 0.0): '96ed268f343cba3d',
    ('entropy', 0.9): 'e045d9c392f26a32',
    ('low_confidence', 0.0): '96ed268f343cba3d',
    ('low_confidence', 0.9): '35a3d057370549f6',
    ('margin', 0.0): '96ed268f343cba3d',
    ('margin', 0.9): 'e045d9c392f26a32',
    ('random', 0.0): 'e89b7f65f302f17a',
    ('random', 0.9): '024064e4faf1f3c4',
    ('threshold', 0.0): '96ed268f343cba3d',
    ('threshold', 0.9): '35a3d057370549f6',
}


@pytest.mark.parametrize(("policy", "temperature"), sorted(BERT))
def test_single_runs_on_a_masked_lm(tiny_model, policy, temperature):
    assert _single(tiny_model, sampler=policy, temperature=temperature, **BERT_KW) == BERT[policy, temperature]


# policy -> fingerprint: blocks of 3, 20 steps (ancestral runs every one), top-p
BERT_BLOCKS_KW = dict(temperature=0.8, top_p=0.9, steps=20, block_length=3, seed=11, threshold=0.3)
BERT_BLOCKS = {
    'low_confidence': 'b367449b264c043c',
    'margin': 'b367449b264c043c',
    'entropy': 'b367449b264c043c',
    'random': '9977902958bead8c',
    'threshold': 'b367449b264c043c',
    'ancestral': '92e56e5af37dca02',
    'ancestral_recompute': '4493e5bd41b3eef1',
    'ancestral_analytic': '92e56e5af37dca02',
}


@pytest.mark.parametrize("policy", POLICIES)
def test_blocks_and_top_p_on_a_masked_lm(tiny_model, policy):
    assert _single(tiny_model, sampler=policy, **BERT_BLOCKS_KW) == BERT_BLOCKS[policy]


# policy -> fingerprint: three candidates of an edit (each seed masks its own slots)
BERT_EDITS_KW = dict(spans=EDIT, temperature=0.7, steps=6, block_length=4)
BERT_EDITS = {
    'low_confidence': '2b7f60cc20f29c18',
    'margin': '19c3220e7441ed07',
    'entropy': '93e8eac5c4f3a440',
    'random': '4efb671d06ea53c8',
    'threshold': '2b7f60cc20f29c18',
    'ancestral': '404ad1a7d5a7289a',
    'ancestral_recompute': 'e24118055a6ca779',
    'ancestral_analytic': '404ad1a7d5a7289a',
}


@pytest.mark.parametrize("policy", POLICIES)
def test_candidates_of_an_edit_on_a_masked_lm(tiny_model, policy):
    assert _candidates(tiny_model, (1, 2, 3), sampler=policy, **BERT_EDITS_KW) == BERT_EDITS[policy]


# (model, policy, cache) -> fingerprint: MDLM and SEDD, the dual cache and none; every policy on
# SEDD (log scores, the analytic step) with the dual cache, the ancestral ones without it too
DIT_KW = dict(temperature=1.0, steps=8, block_length=4, seed=5)
DIT = {
    ('mdlm', 'ancestral', 'dual'): '152f56856a4e1601',
    ('mdlm', 'ancestral', 'none'): '1afe2f4f32ef536d',
    ('mdlm', 'ancestral_recompute', 'dual'): '02a87a944f7f8829',
    ('mdlm', 'ancestral_recompute', 'none'): '892900e676fcb426',
    ('mdlm', 'low_confidence', 'dual'): '18c57cde06b01a33',
    ('mdlm', 'low_confidence', 'none'): 'f11fad9b6af9120d',
    ('sedd', 'ancestral', 'dual'): '56e9181983c17186',
    ('sedd', 'ancestral', 'none'): '70994d8e0f180194',
    ('sedd', 'ancestral_analytic', 'dual'): 'f7e346485fe9f877',
    ('sedd', 'ancestral_analytic', 'none'): '1d7267ab2a3b42bb',
    ('sedd', 'ancestral_recompute', 'dual'): 'b83cc67761992565',
    ('sedd', 'ancestral_recompute', 'none'): '4dd8eab646a1401f',
    ('sedd', 'low_confidence', 'dual'): '99661a93b86bcdd4',
    ('sedd', 'random', 'dual'): 'dbda9bf6fbfa6180',
    ('sedd', 'threshold', 'dual'): '99661a93b86bcdd4',
}


@pytest.mark.parametrize(("name", "policy", "cache"), sorted(DIT))
def test_single_runs_on_dits(request, name, policy, cache):
    model = request.getfixturevalue(name)
    assert _single(model, sampler=policy, cache=cache, **DIT_KW) == DIT[name, policy, cache]


# (model, policy) -> fingerprint: candidates of an edit with the dual cache (per-candidate cached steps)
DIT_EDITS_KW = dict(spans=EDIT, temperature=0.6, steps=6, block_length=3, cache="dual")
DIT_EDITS = {
    ('mdlm', 'ancestral'): 'ca7bf989fb890432',
    ('mdlm', 'threshold'): 'c228561fa4995dd5',
    ('sedd', 'ancestral_analytic'): 'e4b1987c17952cad',
    ('sedd', 'ancestral_recompute'): 'bd930d337b3bc4c5',
    ('sedd', 'low_confidence'): '811ae400164ea5f8',
    ('sedd', 'random'): 'a2dc846d9c0d4d21',
}


@pytest.mark.parametrize(("name", "policy"), sorted(DIT_EDITS))
def test_candidates_of_an_edit_on_dits(request, name, policy):
    model = request.getfixturevalue(name)
    assert _candidates(model, (4, 9), sampler=policy, **DIT_EDITS_KW) == DIT_EDITS[name, policy]
