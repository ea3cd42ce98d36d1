"""lacuna.engine.load_model draws no progress bar on stderr and reports its progress instead."""
from __future__ import annotations

import logging
import threading

from lacuna.engine import load_model
from lacuna.engine.models.load_progress import quiet_load


def test_load_draws_no_progress_bar_and_reports_weights(tiny_model_dir, capfd):
    seen = []
    capfd.readouterr()
    model = load_model(str(tiny_model_dir), device="cpu", dtype="float32",
                       progress=lambda stage, done, total: seen.append((stage, done, total)))
    out, err = capfd.readouterr()
    assert model.context_length > 0
    assert "Loading weights" not in err and "it/s" not in err and "%|" not in err, err
    stages = [s for s, _, _ in seen]
    assert "Reading the tokenizer" in stages
    weights = [(d, t) for s, d, t in seen if s == "Loading weights"]
    assert weights and weights[-1][1] and weights[-1][0] == weights[-1][1]  # it reached its total
    assert [d for d, _ in weights] == sorted(d for d, _ in weights)


def test_load_without_progress_is_quiet_too(tiny_bert_dir, capfd):
    capfd.readouterr()
    load_model(str(tiny_bert_dir), device="cpu", dtype="float32")
    assert "Loading weights" not in capfd.readouterr().err


def test_bars_outside_a_load_and_errors_inside_one_are_untouched(capfd):
    from transformers.utils import logging as hf_logging

    hf_logging.enable_progress_bar()
    with quiet_load(None):
        pass  # installs the hook
    for _ in hf_logging.tqdm(range(3), desc="Elsewhere"):
        pass
    assert "Elsewhere" in capfd.readouterr().err  # another thread's or caller's bar still draws

    inside, records = [], []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("transformers.modeling_utils")
    logger.addHandler(handler)
    # the verbosity may have been set by an earlier in-process CLI run (it quietens
    # transformers by environment before the import); this test is about quiet_load
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_warning()

    def other_thread():
        for _ in hf_logging.tqdm(range(2), desc="Other thread"):
            pass
        inside.append(True)

    with quiet_load(None):
        t = threading.Thread(target=other_thread)
        t.start()
        t.join()
        for _ in hf_logging.tqdm(range(2), desc="Quiet here"):
            pass
        logger.warning("a real warning stays loud")
    logger.removeHandler(handler)
    hf_logging.set_verbosity(verbosity)
    err = capfd.readouterr().err
    assert inside and "Other thread" in err and "Quiet here" not in err
    assert [r.getMessage() for r in records] == ["a real warning stays loud"]


def test_a_failing_progress_callback_does_not_break_the_load(tiny_model_dir):
    def broken(*_):
        raise RuntimeError("display gone")

    assert load_model(str(tiny_model_dir), device="cpu", dtype="float32", progress=broken).context_length > 0


def test_positional_and_keyword_bars_report_inside_a_load():
    from transformers.utils import logging as hf_logging

    seen = []
    with quiet_load(lambda stage, done, total: seen.append((stage, done, total))):
        for _ in hf_logging.tqdm(range(3), "Positional desc"):
            pass
        bar = hf_logging.tqdm(total=4, desc="Manual:")
        bar.update(2)
        bar.update(2)
        bar.set_postfix(x=1)  # anything else tqdm has is a no-op
        bar.close()
    assert ("Positional desc", 3, 3) in seen
    assert [d for s, d, _ in seen if s == "Manual"] == [0, 2, 4]
