import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lacuna.engine import utf8


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=12))
def test_the_automaton_accepts_exactly_valid_utf8(data):
    try:
        data.decode("utf-8")
        valid = True
    except UnicodeDecodeError:
        valid = False
    assert (utf8.run(utf8.ACCEPT, data) == utf8.ACCEPT) == valid


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=6), st.integers(0, 24))
def test_any_cut_of_valid_text_is_completed_by_its_rest(text, cut):
    data = text.encode("utf-8")
    cut = min(cut, len(data))
    middle = utf8.run(utf8.ACCEPT, data[:cut])
    assert middle != utf8.REJECT
    assert utf8.run(middle, data[cut:]) == utf8.ACCEPT


def _table():
    # Partial tokens of 日 (E6 97 A5) and é (C3 A9), by id.
    return utf8.Table.build({10: b"\xe6", 11: b"\x97", 12: b"\xa5", 13: b"\x97\xa5", 14: b"\xc3", 15: b"\xa9",
                             16: b"\xff"})


def test_table_marks_bytes_no_text_holds_as_dead():
    table = _table()
    assert table.dead == (16,)
    assert 16 not in table.index


def test_guard_only_allows_pieces_that_can_complete_a_character():
    table = _table()
    # One span of three slots: E6, masked, masked.
    guard = utf8.Guard(table, ((0, 1, 2),), (0, 0, 0), [10, None, None])
    logits = torch.zeros(2, 20)
    guard.restrict(logits, [1, 2])
    allowed_1 = set(torch.nonzero(torch.isfinite(logits[0])).squeeze(1).tolist())
    # After E6 only continuation bytes may follow (97, A5, A9, 97 A5): no whole token, no new lead.
    assert allowed_1 == {11, 12, 13, 15}
    allowed_2 = set(torch.nonzero(torch.isfinite(logits[1])).squeeze(1).tolist())
    # The last slot must end the character (A5) or, after 97 A5 in slot 1, be whole text.
    assert 12 in allowed_2 and 0 in allowed_2 and 10 not in allowed_2 and 14 not in allowed_2


def test_guard_replaces_a_token_that_no_longer_fits_after_a_neighbour_commits():
    table = _table()
    guard = utf8.Guard(table, ((0, 1),), (0, 0), [None, None])
    logits = torch.zeros(2, 20)
    logits[0, 14] = 5.0  # slot 0 wants C3 (needs one continuation)
    logits[1, 3] = 5.0  # slot 1 wants a whole token...
    logits[1, 15] = 4.0  # ...but A9 is its best token that completes C3
    got = guard.commit([0, 1], [14, 3], logits)
    assert got == [14, 15]
    assert b"".join([b"\xc3", b"\xa9"]).decode("utf-8") == "é"
