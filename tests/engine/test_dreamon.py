"""lacuna.engine.dreamon: DreamOn's growing and shrinking canvas (expand, delete, caps, records)."""
from __future__ import annotations

import dataclasses
import json
import threading
import zlib

import pytest
import torch
from hypothesis import given, settings as hsettings, strategies as st

from lacuna.engine.dreamon import (
    CanvasStep, DreamOnSettings, DreamOnTokens, dreamon_generate, is_dreamon, stream_dreamon,
)
from lacuna.engine.errors import Cancelled, InputError
from tests.support.tiny_dreamon import BOS, build_tiny_dreamon


@pytest.fixture(autouse=True)
def one_thread():
    # These networks are tiny: a second intra-op thread only adds contention.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# Scripted networks: a small vocabulary where 29 is the mask, 30 expand, 1 the EOS (delete).
V, MASK, EXPAND, EOS, WORD, OTHER = 32, 29, 30, 1, 5, 6
TOKENS = DreamOnTokens(MASK, EXPAND, EOS)
GREEDY = dict(temperature=0.0, top_k=None)


class Scripted(torch.nn.Module):
    """A stand-in for DreamNetwork: ``rule(call, canvas, position)`` -> {token: logit}
    scores the token at ``position`` (row position - 1, Dream's shift); every
    other token gets 0. ``call`` counts network calls from 0."""

    def __init__(self, rule):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.rule, self.calls = rule, 0

    def forward(self, ids, logits_at):
        canvas = ids[0].tolist()
        out = torch.zeros(1, logits_at.numel(), V)
        for j, row in enumerate(logits_at.tolist()):
            for token, logit in self.rule(self.calls, canvas, row + 1).items():
                out[0, j, token] = logit
        self.calls += 1
        return out


def leftmost_first(choice):
    """A rule whose leftmost mask is the most confident; ``choice(call)`` is its token there."""
    def rule(call, canvas, position):
        first = canvas.index(MASK) if MASK in canvas else position
        strength = 20.0 - (position - first)  # lower entropy on the left
        return {choice(call): strength}
    return rule


def prompt(prefix=3, masks=3, suffix=2):
    return [BOS] + [10 + i for i in range(prefix)] + [MASK] * masks + [20 + i for i in range(suffix)] + [EOS]


def run(rule, ids=None, **kw):
    ids = prompt() if ids is None else ids
    return dreamon_generate(Scripted(rule), ids, TOKENS, DreamOnSettings(**{"max_new_tokens": 8, **GREEDY, **kw}))


def replay(before: tuple[int, ...], step: CanvasStep, pad: bool = False) -> list[int]:
    """Rebuild a step's canvas from the one before it and the step's record
    (with ``pad``, any mask from the first delete on may be removed too; an expand over a
    cap, not listed in ``expanded``, stays one mask)."""
    canvas = list(before)
    for position, token in step.committed:
        assert canvas[position] == MASK
        canvas[position] = token
    for position in sorted(step.deleted, reverse=True):
        # Upstream pads every step-start mask from the first delete on, this step's commits included.
        assert before[position] == MASK and (canvas[position] == EOS or pad)
        del canvas[position]
    out = []
    for position, token in enumerate(canvas):
        if token == EXPAND:
            out += [MASK, MASK] if position in step.expanded else [MASK]
        else:
            assert position not in step.expanded
            out.append(token)
    return out


def check_records(ids, result, pad: bool = False):
    before = tuple(ids)
    for n, step in enumerate(result.steps, start=1):
        assert step.step == n
        assert list(step.ids) == replay(before, step, pad)
        assert step.masked == step.ids.count(MASK)
        before = step.ids


# --- growth and shrinkage ------------------------------------------------------------

def test_an_expand_becomes_two_masks_and_the_canvas_grows():
    ids = prompt()
    result = run(leftmost_first(lambda call: EXPAND if call == 0 else WORD), ids)
    first = result.steps[0]
    assert first.committed == ((4, EXPAND),) and first.expanded == (4,) and first.deleted == ()
    assert first.length == len(ids) + 1
    assert first.ids[4:8] == (MASK,) * 4 and first.middle(4, 3) == (MASK,) * 4
    assert result.middle == (WORD,) * 4 and result.finished
    check_records(ids, result)


def test_a_delete_removes_its_position_and_the_canvas_shrinks():
    ids = prompt()
    result = run(leftmost_first(lambda call: EOS if call == 0 else WORD), ids)
    first = result.steps[0]
    assert first.committed == ((4, EOS),) and first.deleted == (4,) and first.length == len(ids) - 1
    assert result.middle == (WORD,) * 2
    check_records(ids, result)


def test_the_prompts_own_eos_is_never_deleted():
    result = run(leftmost_first(lambda call: EOS))
    assert result.middle == () and result.ids == tuple(prompt(masks=0))
    assert result.ids[-1] == EOS


def test_only_masks_from_the_first_delete_on_are_padded_with_deletes():
    ids = prompt(masks=4)
    rule = leftmost_first(lambda call: WORD if call == 0 else EOS)
    padded = run(rule, ids, pad_delete_to_right=True)
    assert padded.middle == (WORD,) and padded.nfe == 2
    assert padded.steps[1].deleted == (5, 6, 7)
    plain = run(rule, ids)
    assert plain.middle == (WORD,) and plain.nfe == 4


def test_an_eos_in_the_prefix_does_not_trigger_padding_with_deletes():
    # Dream's usual start token is the EOS; upstream would delete the whole span here.
    ids = [EOS] + prompt()[1:]
    result = run(leftmost_first(lambda call: WORD), ids, pad_delete_to_right=True)
    assert result.middle == (WORD,) * 3 and result.ids[0] == EOS


# --- caps ----------------------------------------------------------------------------

def prefers_expand_then_word(call, canvas, position):
    return {EXPAND: 12.0, WORD: 6.0}


def test_expansion_stops_at_max_length():
    ids = prompt(masks=3)
    result = run(prefers_expand_then_word, ids, max_new_tokens=5)
    max_length = len(ids) - 3 + 5
    assert max(s.length for s in result.steps) == max_length == len(result.ids)
    assert sum(len(s.expanded) for s in result.steps) == 2
    assert result.middle == (WORD,) * 5


def test_expansion_stops_when_the_budget_is_spent():
    result = run(prefers_expand_then_word, max_new_tokens=40, expand_budget=2)
    assert sum(len(s.expanded) for s in result.steps) == 2
    assert [s.expand_budget for s in result.steps][:3] == [1, 0, 0]
    assert result.middle == (WORD,) * 5


def test_no_room_means_no_growth():
    ids = prompt(masks=3)
    result = run(prefers_expand_then_word, ids, max_new_tokens=3)
    assert all(s.length == len(ids) for s in result.steps) and result.middle == (WORD,) * 3


def test_two_commits_per_step_never_overshoot_the_caps():
    # Two expansions in one step: upstream would grow past max_length and cut the
    # suffix, or spend the budget below zero and stop enforcing it.
    ids = prompt(masks=4)
    result = run(prefers_expand_then_word, ids, max_new_tokens=5, number_transfer_tokens=2)
    assert max(s.length for s in result.steps) == len(ids) + 1
    assert result.ids[:4] == tuple(ids[:4]) and result.ids[-3:] == tuple(ids[-3:])
    result = run(prefers_expand_then_word, ids, max_new_tokens=30, number_transfer_tokens=2, expand_budget=1)
    assert sum(len(s.expanded) for s in result.steps) == 1 and len(result.middle) == 5


# --- records, determinism, hooks, cancel ---------------------------------------------

def test_steps_are_plain_immutable_records():
    result = run(leftmost_first(lambda call: (EXPAND, EOS, WORD)[call % 3]))
    step = result.steps[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        step.ids = ()
    for s in result.steps:
        assert type(s.ids) is tuple and all(type(t) is int for t in s.ids)
        assert all(type(p) is int and type(t) is int for p, t in s.committed)
        assert len(s.probability) == len(s.committed) and all(0.0 < p <= 1.0 for p in s.probability)
    assert {s.length for s in result.steps} != {len(prompt())}


def test_stream_yields_the_same_steps_as_the_collected_run():
    rule = leftmost_first(lambda call: (EXPAND, WORD, EOS, WORD)[call % 4])
    streamed = list(stream_dreamon(Scripted(rule), prompt(), TOKENS, DreamOnSettings(max_new_tokens=8, **GREEDY)))
    assert tuple(streamed) == run(rule).steps


def hashed_rule(seed: int):
    """Context-dependent preferences without a network: each (canvas, position)
    hashes to a favourite among two words, expand and delete, and a strength."""
    def rule(call, canvas, position):
        h = zlib.crc32(json.dumps([seed, canvas, position]).encode())
        favourite = (WORD, OTHER, EXPAND, EOS)[h % 4]
        return {favourite: 4.0 + (h >> 4) % 8, WORD: 3.0}
    return rule


def no_masks(logits, canvas, masked):
    """What Lacuna's wiring does: a mask is never a fill."""
    logits[:, MASK] = float("-inf")
    return logits


def test_a_seeded_run_repeats_exactly_and_the_seed_matters():
    net = Scripted(hashed_rule(0))
    s = DreamOnSettings(max_new_tokens=10, temperature=1.0, top_k=None)
    runs = [dreamon_generate(net, prompt(masks=4), TOKENS, s, torch.Generator().manual_seed(seed),
                             logits_hook=no_masks) for seed in (0, 0, 1, 2)]
    assert runs[0] == runs[1]
    assert len({r.steps for r in runs[1:]}) > 1


def test_a_network_that_predicts_the_mask_runs_into_the_step_cap():
    # Upstream samples over the whole vocabulary, the mask included; its loop bound ends such a run.
    ids = prompt(prefix=1, masks=1, suffix=0)
    result = run(lambda call, canvas, position: {MASK: 9.0}, ids, max_new_tokens=1)
    max_gen_len = len(ids) - 2
    assert result.nfe == 2 * max_gen_len + 2 * (2 * max_gen_len) and not result.finished
    assert result.ids == tuple(ids)


def test_the_logits_hook_sees_the_masks_and_can_forbid_deletes():
    seen = []

    def no_delete(logits, canvas, masked):
        seen.append((logits.shape[0], masked.tolist()))
        logits[:, EOS] = float("-inf")
        return logits

    net = Scripted(leftmost_first(lambda call: EOS if call < 2 else WORD))
    result = dreamon_generate(net, prompt(), TOKENS, DreamOnSettings(max_new_tokens=8, **GREEDY),
                              logits_hook=no_delete)
    assert not any(s.deleted for s in result.steps) and len(result.middle) == 3
    assert seen[0] == (3, [4, 5, 6])


def test_cancel_stops_between_steps():
    stop = threading.Event()
    steps = stream_dreamon(Scripted(leftmost_first(lambda call: WORD)), prompt(), TOKENS,
                           DreamOnSettings(max_new_tokens=8, **GREEDY), cancel=stop)
    next(steps)
    stop.set()
    with pytest.raises(Cancelled):
        next(steps)


# --- property: invariants of any run ---------------------------------------------------

@hsettings(max_examples=60, deadline=None)
@given(
    rule_seed=st.integers(0, 50),
    shape=st.tuples(st.integers(1, 5), st.integers(1, 5), st.integers(0, 4)),
    extra=st.integers(0, 6),
    budget=st.none() | st.integers(0, 4),
    alg=st.sampled_from(["entropy", "maskgit_plus", "topk_margin"]),
    temperature=st.sampled_from([0.0, 1.0]),
    transfer=st.integers(1, 3),
    pad=st.booleans(),
    seed=st.integers(0, 3),
)
def test_any_run_keeps_the_context_and_respects_the_caps(rule_seed, shape, extra, budget, alg, temperature,
                                                         transfer, pad, seed):
    prefix, masks, suffix = shape
    ids = prompt(prefix, masks, suffix)
    s = DreamOnSettings(max_new_tokens=masks + extra, expand_budget=budget, alg=alg, temperature=temperature,
                        top_k=None, pad_delete_to_right=pad, number_transfer_tokens=transfer)
    result = dreamon_generate(Scripted(hashed_rule(rule_seed)), ids, TOKENS, s,
                              torch.Generator().manual_seed(seed), logits_hook=no_masks)
    max_length = len(ids) + extra
    head, tail = tuple(ids[: prefix + 1]), tuple(ids[len(ids) - suffix - 1 :])
    grown = sum(len(step.expanded) for step in result.steps)
    before = len(ids)
    for step in result.steps:
        assert step.ids[: prefix + 1] == head and step.ids[len(step.ids) - suffix - 1 :] == tail
        assert step.length <= max_length
        assert step.length - before == len(step.expanded) - len(step.deleted)
        before = step.length
    assert grown <= (2 * (max_length - prefix - 1) if budget is None else budget)
    assert result.finished and MASK not in result.middle
    assert EXPAND not in result.ids
    check_records(ids, result, pad)
    if transfer == 1 and not pad:  # each step fills one mask or trades it for two
        assert result.nfe == masks + 2 * grown


# --- errors a user can cause -------------------------------------------------------------

@pytest.mark.parametrize("ids, settings, fragment", [
    ([BOS, 10, 11, EOS], dict(max_new_tokens=4), "no mask token"),
    ([BOS, MASK, 10, MASK, EOS], dict(max_new_tokens=4), "contiguous"),
    ([BOS, MASK, MASK, MASK, EOS], dict(max_new_tokens=2), "at least the number of masks"),
    ([BOS, EXPAND, MASK, EOS], dict(max_new_tokens=2), "<|expand|>"),
])
def test_bad_prompts_are_refused_in_one_sentence(ids, settings, fragment):
    with pytest.raises(InputError) as err:
        run(leftmost_first(lambda call: WORD), ids, **settings)
    message = str(err.value)
    assert fragment in message and "\n" not in message and "Error" not in message


def test_a_canvas_that_could_outgrow_the_context_is_refused():
    with pytest.raises(InputError, match="context of 12"):
        dreamon_generate(Scripted(leftmost_first(lambda call: WORD)), prompt(), TOKENS,
                         DreamOnSettings(max_new_tokens=8, **GREEDY), context=12)


@pytest.mark.parametrize("bad", [
    dict(alg="origin"), dict(max_new_tokens=0), dict(number_transfer_tokens=0), dict(top_k=0),
    dict(expand_budget=-1), dict(temperature=-1.0), dict(temperature=float("nan")), dict(top_p=0.0),
    dict(alg_temp=float("inf")), dict(max_new_tokens=True),
])
def test_bad_settings_are_refused_in_one_sentence(bad):
    with pytest.raises(InputError) as err:
        DreamOnSettings(**{"max_new_tokens": 4, **bad})
    assert "\n" not in str(err.value)


def test_token_ids_must_be_distinct():
    with pytest.raises(InputError, match="distinct"):
        DreamOnTokens(5, 5, 1)


# --- the official layout -------------------------------------------------------------------

def test_the_official_layout_loads_and_its_network_grows_and_shrinks(tmp_path):
    from lacuna.engine import load_model

    folder = build_tiny_dreamon(tmp_path / "dreamon", expand=2.5, delete=2.0)
    config = json.loads((folder / "config.json").read_text())
    assert is_dreamon(config)
    tokens = DreamOnTokens.from_config(config)
    assert (tokens.mask_id, tokens.expand_id, tokens.delete_id) == (
        config["mask_token_id"], config["mask_token_id"] + 1, config["eos_token_id"])
    model = load_model(str(folder), device="cpu", dtype="float32")
    assert model.tokenizer.convert_tokens_to_ids("<|expand|>") == tokens.expand_id
    assert model.token_text(tokens.expand_id) == "<|expand|>"
    ids = [*model.prefix_ids, *model.tokenizer.encode(" the", add_special_tokens=False),
           *[tokens.mask_id] * 4, *model.tokenizer.encode(" end", add_special_tokens=False), tokens.delete_id]
    lengths = set()
    for seed in range(4):
        result = dreamon_generate(model.network, ids, tokens, DreamOnSettings(max_new_tokens=10),
                                  torch.Generator().manual_seed(seed), context=model.context_length)
        lengths |= {s.length for s in result.steps}
    assert min(lengths) < len(ids) < max(lengths)


def test_a_plain_dream_config_is_not_dreamon(tmp_path):
    from tests.support.tiny_dream import build_tiny_dream

    config = json.loads((build_tiny_dream(tmp_path / "dream") / "config.json").read_text())
    assert not is_dreamon(config)
    assert is_dreamon({**config, "expand_token_id": 151667})
    with pytest.raises(InputError, match="config.json"):
        DreamOnTokens.from_config({"expand_token_id": 3})
