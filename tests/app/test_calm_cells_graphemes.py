"""A calm-layout cell never splits a grapheme cluster with its word joiners (review of
f29b0de: "e" + WJ + U+0301 drew the accent on a dotted circle)."""
import unicodedata

from hypothesis import given, settings as hsettings, strategies as st

from lacuna.app.editor.preview import ELLIPSIS, NBSP, WJ, ZWSP, Cells, graphemes
from lacuna.app.editor.widget import editor_font

TOKENS = ["e\u0301te\u0301", "x\u0308", "\u0928\u092e\u0938\u094d\u0924\u0947", "\u0e01\u0e34\u0e19",
          "\U0001F44D\U0001F3FD", "\U0001F1EB\U0001F1F7", "\u05e9\u05b8\u05c1\u05dc",
          "\U0001F468\u200d\U0001F469\u200d\U0001F467", "\u2764\ufe0f"]


def _body(cell: str) -> list[str]:
    return [p for p in cell.rstrip(ZWSP).split(WJ) if p and p.strip(NBSP)]


def test_the_reviewers_tokens_keep_their_clusters_whole(qapp):
    cells = Cells(editor_font())
    for tok in TOKENS:
        shown = _body(cells.cell(tok)[0])
        whole = graphemes(tok)
        # what is shown is the token's clusters, whole, in order (an ellipsis ends a cut one)
        kept = [p for p in shown if p != ELLIPSIS]
        assert kept == whole[: len(kept)], (tok, shown)
        assert len(whole) > 1 or shown == whole  # one cluster is one piece, no joiner inside


def test_graphemes_agree_with_the_clusters_people_see(qapp):
    assert graphemes("e\u0301x") == ["e\u0301", "x"]
    assert graphemes("\U0001F1EB\U0001F1F7\U0001F1E9\U0001F1EA") == ["\U0001F1EB\U0001F1F7", "\U0001F1E9\U0001F1EA"]
    assert graphemes("\U0001F44D\U0001F3FDa") == ["\U0001F44D\U0001F3FD", "a"]
    assert graphemes("ab") == ["a", "b"] and graphemes("") == []


MARKS = [chr(c) for c in (0x0301, 0x0308, 0x05B8, 0x0E34, 0x094D, 0x20E3, 0xFE0F, 0x0903)]


@hsettings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("ae\u05e9\u0e01\u0928x"), st.lists(st.sampled_from(MARKS), max_size=3)),
                min_size=1, max_size=12))
def test_no_word_joiner_before_a_mark_property(qapp, parts):
    tok = "".join(base + "".join(marks) for base, marks in parts)
    cell = Cells(editor_font()).cell(tok)[0]
    for k, ch in enumerate(cell[1:], 1):
        if cell[k - 1] == WJ:
            assert not unicodedata.category(ch).startswith("M"), (tok, cell)
    assert "".join(graphemes(tok)) == tok


def test_a_cluster_is_never_cut_inside_a_surrogate_pair(qapp):
    # Qt's boundary finder puts a boundary between the halves of some unassigned astral code
    # points: graphemes() then raised UnicodeDecodeError, and a token holding one broke the view
    for text in ("\u0ae6\U00018d1f", "a\U00018d1fb", "\U00018d1f"):
        assert "".join(graphemes(text)) == text
        assert all(not 0xD800 <= ord(c) < 0xE000 for g in graphemes(text) for c in g)
        Cells(editor_font()).cell(text)


@hsettings(max_examples=300, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=12))
def test_graphemes_are_the_text_cut_between_characters_property(qapp, text):
    parts = graphemes(text)
    assert "".join(parts) == text and all(parts)
