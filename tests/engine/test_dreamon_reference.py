"""lacuna.engine.dreamon against DreamOn's published generation code, token for token.

The expected runs below were produced by upstream's
``DreamOnGenerationMixin.diffusion_generate`` (Dream-org/DreamOn-v0-7B
generation_utils.py) on upstream's DreamModel (modeling_dream.py, as vendored
in ZHZisZZ/dllm@ca17675 dllm/pipelines/dream/models/), transformers 4.46.2,
from a scratch folder outside this repository (never committed), with the
same float32 weights: tests.support.tiny_dreamon.seeded_state (seeded
recipe weights whose head is biased towards ``<|expand|>`` and the delete
token, so that canvases grow and shrink) and torch's global generator seeded
with ``rng`` (here: a torch.Generator seeded alike). The generator script
(kept outside the repository, beside the upstream files it imports) imports
CASES from this module, runs upstream and prints EXPECTED; upstream's network
runs the canvas padded to ``max_length`` under an attention mask, Lacuna's
runs the window alone.

Per case: the final canvas, the canvas length after every step, and a
SHA-256 over every step's canvas (upstream's: the window each network call
saw, plus the final one), so each intermediate canvas is checked.
"""
from __future__ import annotations

import functools
import hashlib
import json

import pytest
import torch

from lacuna.engine.dreamon import DreamOnSettings, DreamOnTokens, dreamon_generate
from tests.support.tiny_dreamon import BOS, CONFIG, seeded_network


@pytest.fixture(autouse=True)
def one_thread():
    # A tiny network: a second intra-op thread only adds contention (token results do not change).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TOKENS = DreamOnTokens(CONFIG["mask_token_id"], CONFIG["expand_token_id"], CONFIG["eos_token_id"])
EOS, MASK = CONFIG["eos_token_id"], CONFIG["mask_token_id"]


def prompt(prefix: int, masks: int, suffix: int) -> list[int]:
    """DreamOn's README layout: BOS, prefix, masks, suffix, EOS (ids drawn from 10..99)."""
    body = [10 + (7 * i) % 90 for i in range(prefix + suffix)]
    return [BOS] + body[:prefix] + [MASK] * masks + body[prefix:] + [EOS]


GREEDY = dict(temperature=0.0, top_k=None)
# name: (weights seed, expand bias, delete bias, (prefix, masks, suffix), settings, rng seed).
# Upstream is called with every DreamOnSettings field given, except in
# "upstream_defaults", which leaves out all but max_new_tokens on both sides.
CASES = {
    "greedy_grows_to_cap_then_budget": (10, 2.5, 2.0, (8, 4, 6), dict(max_new_tokens=12, **GREEDY), 0),
    "greedy_shrinks_to_empty": (8, 2.0, 2.5, (8, 4, 6), dict(max_new_tokens=12, **GREEDY), 0),
    "greedy_unbiased_fixed_length": (7, 0.0, 0.0, (5, 3, 5), dict(max_new_tokens=6, **GREEDY), 0),
    "sampled_grows_and_shrinks": (8, 2.5, 2.0, (8, 4, 6), dict(max_new_tokens=12, temperature=1.0, top_k=None,
                                                               top_p=0.95), 1),
    "sampled_maskgit_top_k": (8, 2.8, 2.6, (6, 2, 9), dict(max_new_tokens=8, alg="maskgit_plus",
                                                           temperature=0.7, top_k=20), 2),
    "margin_alg_temp": (8, 2.5, 2.0, (8, 4, 6), dict(max_new_tokens=10, alg="topk_margin", temperature=1.0,
                                                     top_k=None, alg_temp=0.5), 3),
    "pad_delete_to_right": (8, 2.5, 2.0, (8, 6, 6), dict(max_new_tokens=12, temperature=1.0, top_k=None,
                                                         pad_delete_to_right=True), 4),
    "small_expand_budget": (7, 3.0, 2.0, (4, 3, 4), dict(max_new_tokens=16, expand_budget=3, **GREEDY), 0),
    "no_room_to_grow": (10, 2.5, 2.0, (8, 4, 6), dict(max_new_tokens=4, **GREEDY), 0),
    "readme_call": (8, 2.5, 2.0, (8, 4, 6), dict(max_new_tokens=12, temperature=0.2, alg="entropy", alg_temp=0.0,
                                                 top_p=0.9, number_transfer_tokens=1), 5),
    "two_per_step": (8, 2.5, 2.0, (8, 6, 6), dict(max_new_tokens=12, number_transfer_tokens=2, **GREEDY), 0),
    "upstream_defaults": (8, 2.5, 2.0, (8, 4, 6), dict(max_new_tokens=12), 6),
}

EXPECTED: dict[str, dict] = {
    "greedy_grows_to_cap_then_budget": {
        "digest": "18f948cb97291de50c01ba418061865a0e210a60dfbcbaea4a60be80a7e594b0",
        "final": [2, 10, 17, 24, 31, 38, 45, 52, 59, 57, 66, 73, 80, 87, 94, 11, 1],
        "lengths": [
            21, 22, 23, 24, 25, 26, 27, 28, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 19, 18, 19, 18, 19,
            18, 19, 18, 19, 18, 19, 18, 19, 18, 19, 18, 19, 18, 19, 18, 19, 18, 19, 18, 19, 18, 19, 18, 19,
            18, 19, 18, 19, 18, 19, 18, 19, 18, 19, 18, 19, 18, 19, 18, 19, 18, 19, 18, 19, 18, 19, 18, 19,
            18, 19, 18, 19, 18, 19, 18, 17
        ],
    },
    "greedy_shrinks_to_empty": {
        "digest": "f08103e04583a2dced35f5b03f7c2316da645f894136cf355ffc13ea721a6fbc",
        "final": [2, 10, 17, 24, 31, 38, 45, 52, 59, 66, 73, 80, 87, 94, 11, 1],
        "lengths": [19, 18, 17, 16],
    },
    "greedy_unbiased_fixed_length": {
        "digest": "25cc877a19464e3857220e59b346241786ef1e38e09dbb535da3d363c4941358",
        "final": [2, 10, 17, 24, 31, 38, 112, 13, 13, 45, 52, 59, 66, 73, 1],
        "lengths": [15, 15, 15],
    },
    "margin_alg_temp": {
        "digest": "570638c0052a6fa03f2a13170b2bb520b4bfb9afbaf671abdf5b2ef4853a78ae",
        "final": [2, 10, 17, 24, 31, 38, 45, 52, 59, 32, 49, 79, 66, 73, 80, 87, 94, 11, 1],
        "lengths": [20, 21, 20, 20, 19, 19],
    },
    "no_room_to_grow": {
        "digest": "adcfdca7caaac2f87687e3f89686a248fedb3d9de9398a1b803406186653c1e8",
        "final": [2, 10, 17, 24, 31, 38, 45, 52, 59, 66, 73, 80, 87, 94, 11, 1],
        "lengths": [
            19, 20, 19, 20, 19, 20, 19, 20, 19, 20, 19, 20, 19, 20, 19, 20, 19, 20, 19, 20, 19, 20, 19, 20,
            19, 20, 19, 20, 19, 20, 19, 20, 19, 20, 19, 20, 19, 20, 19, 20, 19, 20, 19, 20, 19, 18, 17, 16
        ],
    },
    "pad_delete_to_right": {
        "digest": "819e99a49f47d5465a58d2b3f731b115e5508616f3c885a3e8fdbcc76c0a3111",
        "final": [2, 10, 17, 24, 31, 38, 45, 52, 59, 13, 47, 118, 57, 50, 66, 73, 80, 87, 94, 11, 1],
        "lengths": [22, 20, 21, 21, 21, 21, 21],
    },
    "readme_call": {
        "digest": "8c6359b878467de5a703b20a301fa07e9a7f5fc68be48934e7adb92135e32b6d",
        "final": [2, 10, 17, 24, 31, 38, 45, 52, 59, 66, 73, 80, 87, 94, 11, 1],
        "lengths": [
            21, 22, 23, 24, 25, 26, 27, 28, 27, 28, 27, 28, 27, 28, 27, 28, 27, 28, 27, 28, 27, 28, 27, 28,
            27, 28, 27, 28, 27, 28, 27, 28, 27, 28, 27, 28, 27, 28, 27, 28, 27, 28, 27, 28, 27, 28, 27, 28,
            27, 28, 27, 28, 27, 28, 27, 28, 27, 28, 27, 28, 27, 28, 27, 28, 27, 28, 27, 28, 27, 26, 25, 24,
            23, 22, 21, 20, 19, 18, 17, 16
        ],
    },
    "sampled_grows_and_shrinks": {
        "digest": "d3f5d3ec051939c86323296f2b73cc0f806643988acc792ed30347d6a2fff197",
        "final": [2, 10, 17, 24, 31, 38, 45, 52, 59, 12, 87, 82, 65, 10, 11, 66, 73, 80, 87, 94, 11, 1],
        "lengths": [21, 22, 22, 23, 23, 22, 23, 23, 22, 22, 23, 23, 22, 22],
    },
    "sampled_maskgit_top_k": {
        "digest": "f7f968d759752cd597b18d6fd21e439f59d1ae61cc6bd686f8805bb9c10b21a7",
        "final": [2, 10, 17, 24, 31, 38, 45, 98, 52, 59, 66, 73, 80, 87, 94, 11, 18, 1],
        "lengths": [
            20, 19, 20, 21, 22, 23, 24, 25, 24, 25, 24, 25, 24, 25, 24, 25, 24, 25, 24, 25, 24, 25, 24, 25,
            24, 25, 24, 25, 24, 25, 24, 25, 24, 25, 24, 25, 24, 25, 24, 25, 24, 25, 24, 25, 24, 25, 24, 25,
            24, 25, 24, 25, 24, 25, 24, 25, 24, 25, 24, 25, 24, 25, 24, 25, 24, 25, 24, 23, 22, 21, 20, 19,
            18, 18
        ],
    },
    "small_expand_budget": {
        "digest": "90048780fa7772fae12000b9e15abc366044dc4733cef860fc86b664a140de97",
        "final": [2, 10, 17, 24, 31, 67, 67, 112, 38, 45, 52, 59, 1],
        "lengths": [13, 14, 15, 16, 15, 14, 13, 13, 13],
    },
    "two_per_step": {
        "digest": "9cffb66c160f90ec411acc866b97e940b9a4fe5e3a747126c15e18c9652d5cf0",
        "final": [2, 10, 17, 24, 31, 38, 45, 52, 59, 66, 73, 80, 87, 94, 11, 1],
        "lengths": [
            24, 26, 28, 26, 28, 26, 28, 26, 28, 26, 28, 26, 28, 26, 28, 26, 28, 26, 28, 26, 28, 26, 28, 26,
            28, 26, 28, 26, 28, 26, 28, 26, 28, 26, 28, 26, 24, 22, 20, 18, 16
        ],
    },
    "upstream_defaults": {
        "digest": "15e8760ac486779b8ea2b7cab502f338c34a894a3b020afe3e99406219e5d67d",
        "final": [
            2, 10, 17, 24, 31, 38, 45, 52, 59, 93, 83, 40, 36, 49, 51, 37, 121, 118, 83, 103, 66, 73, 80, 87,
            94, 11, 1
        ],
        "lengths": [
            21, 22, 21, 22, 23, 24, 23, 24, 25, 26, 25, 26, 26, 26, 25, 26, 26, 27, 28, 27, 28, 27, 28, 28,
            27, 27, 28, 27, 28, 27, 27, 28, 28, 27, 28, 28, 27, 27, 27, 27
        ],
    },
}


def canvases_digest(canvases) -> str:
    return hashlib.sha256(json.dumps([list(c) for c in canvases]).encode()).hexdigest()


@functools.lru_cache(maxsize=None)
def network(seed: int, expand: float, delete: float):
    return seeded_network(seed, expand, delete)


def run_case(name: str):
    seed, expand, delete, shape, settings, rng = CASES[name]
    net = network(seed, expand, delete)
    gen = torch.Generator().manual_seed(rng)
    return dreamon_generate(net, prompt(*shape), TOKENS, DreamOnSettings(**settings), gen)


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_upstream_token_for_token(name):
    want = EXPECTED[name]
    ids = prompt(*CASES[name][3])
    got = run_case(name)
    assert [s.length for s in got.steps] == want["lengths"]
    assert list(got.ids) == want["final"]
    assert canvases_digest([ids] + [s.ids for s in got.steps]) == want["digest"]


def test_the_cases_cover_growth_shrinkage_and_the_caps():
    # Guards the comparison against cases too tame to tell a fixed-length sampler apart.
    def moves(name):
        lengths = [len(prompt(*CASES[name][3]))] + EXPECTED[name]["lengths"]
        return {b - a for a, b in zip(lengths, lengths[1:])}

    assert any(1 in moves(n) and -1 in moves(n) for n in CASES)
    assert any(max(EXPECTED[n]["lengths"]) == len(prompt(*CASES[n][3])) - CASES[n][3][1]
               + CASES[n][4]["max_new_tokens"] for n in CASES)  # some run reaches max_length
    start = len(prompt(*CASES["no_room_to_grow"][3]))  # max_new_tokens == masks: max_length is the prompt's
    assert max(EXPECTED["no_room_to_grow"]["lengths"]) == start and -1 in moves("no_room_to_grow")
    assert any(len(EXPECTED[n]["final"]) - sum(CASES[n][3][::2]) - 2 > 0 for n in CASES)  # a non-empty fill


def test_reference_is_sensitive_to_the_weights():
    seed, expand, delete, shape, settings, rng = CASES["sampled_grows_and_shrinks"]
    net = seeded_network(seed + 1, expand, delete)
    got = dreamon_generate(net, prompt(*shape), TOKENS, DreamOnSettings(**settings),
                           torch.Generator().manual_seed(rng))
    assert list(got.ids) != EXPECTED["sampled_grows_and_shrinks"]["final"]
