"""The GUI end to end with natively loaded families: tiny random LLaDA, LLaDA-MoE, Dream, MDLM and
SEDD checkpoints in their official layouts, opened through the app's model path."""
from __future__ import annotations

import pytest

from tests.app.test_e2e import check_accept_undo_save, mask_two_and_fill, real_window

DIT_VOCAB = 401  # 400 GPT-2-like tokens (the last <|endoftext|>) + the mask


@pytest.fixture(scope="module")
def tiny_mdlm_dir(tmp_path_factory):
    from tests.support.dit_tiny import build_tiny_mdlm

    return build_tiny_mdlm(tmp_path_factory.mktemp("gui-mdlm"), with_tokenizer=True, vocab_size=DIT_VOCAB)


@pytest.fixture(scope="module")
def tiny_sedd_dir(tmp_path_factory):
    from tests.support.dit_tiny import build_tiny_sedd

    return build_tiny_sedd(tmp_path_factory.mktemp("gui-sedd"), with_tokenizer=True, tokens=DIT_VOCAB - 1)


@pytest.mark.parametrize("folder, family", [
    ("tiny_llada_dir", "llada"), ("tiny_llada_moe_dir", "llada_moe"), ("tiny_dream_dir", "dream"),
    ("tiny_mdlm_dir", "mdlm"), ("tiny_sedd_dir", "sedd"),
])
def test_a_native_family_fills_two_spans_accept_undo_save(folder, family, make_window, qtbot, tmp_path, request):
    w = real_window(make_window, qtbot, request.getfixturevalue(folder))
    assert w.models.model.family == family
    path, text = mask_two_and_fill(w, qtbot, tmp_path, steps=4)
    filled = w.infill.current.result
    assert filled.text != text and all(s.end > s.start for s in filled.spans)  # the spans were filled anew
    check_accept_undo_save(w, path, text)  # ... and nothing outside them changed
