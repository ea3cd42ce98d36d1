import pytest
from hypothesis import given
from hypothesis import strategies as st

from lacuna.engine import schedules


def test_split_evenly_gives_the_remainder_to_early_steps():
    assert schedules.split_evenly(10, 4) == [3, 3, 2, 2]
    assert schedules.split_evenly(3, 8) == [1, 1, 1]
    assert schedules.split_evenly(0, 4) == []


@given(st.integers(1, 500), st.integers(1, 500))
def test_commit_count_reproduces_split_evenly(total, steps):
    remaining, done = total, []
    plan = schedules.split_evenly(total, steps)
    for s in range(len(plan)):
        k = schedules.commit_count(remaining, len(plan) - s)
        done.append(k)
        remaining -= k
    assert done == plan and remaining == 0


def test_blocks_cover_all_slots_in_order():
    assert schedules.blocks(10, 4) == [4, 4, 2]
    assert schedules.blocks(10, None) == [10]
    assert schedules.blocks(10, 32) == [10]


@given(st.lists(st.integers(1, 64), min_size=1, max_size=8), st.integers(1, 300))
def test_steps_per_block_gives_two_steps_per_block_and_never_more_than_tokens(sizes, steps):
    shares = schedules.steps_per_block(sizes, steps)
    assert len(shares) == len(sizes)
    for size, share in zip(sizes, shares):
        assert 1 <= share <= size
        assert share >= min(2, size)


def test_steps_per_block_follows_the_requested_total_when_it_can():
    assert sum(schedules.steps_per_block([32, 32, 32, 32], 64)) == 64
    assert schedules.steps_per_block([32, 32], 2) == [2, 2]  # at least two per block


@pytest.mark.parametrize("steps", [1, 4, 16])
def test_mdlm_schedule_reveals_everything_on_the_last_step(steps):
    assert schedules.unmask_probability(steps - 1, steps) == 1.0
    probs = [schedules.unmask_probability(s, steps) for s in range(steps)]
    assert all(0 < p <= 1 for p in probs)
    assert probs == sorted(probs)


def test_uncapped_steps_may_exceed_the_tokens():
    assert schedules.steps_per_block([4], 16, cap=False) == [16]
    assert schedules.steps_per_block([4], 16) == [4]
