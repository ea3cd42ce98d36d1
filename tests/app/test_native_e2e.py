"""The GUI end to end with a natively loaded family: a tiny random LLaDA in the official layout."""
from __future__ import annotations

from tests.app.test_e2e import check_accept_undo_save, mask_two_and_fill, real_window


def test_tiny_llada_fills_two_spans_accept_undo_save(make_window, qtbot, tmp_path, tiny_llada_dir):
    w = real_window(make_window, qtbot, tiny_llada_dir)
    path, text = mask_two_and_fill(w, qtbot, tmp_path)
    check_accept_undo_save(w, path, text)
