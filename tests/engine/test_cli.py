import json

import pytest

from engine.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["infill", "the [[3 heaven"], "unclosed [["),
        (["infill", "the [[0]] heaven"], "no tokens"),
        (["infill", "--sampler", "nope", "the [[2]]"], "unknown sampler"),
        (["infill", "   "], "empty"),
        (["infill", "no holes here"], "nothing to fill"),
        (["infill", "--steps", "x", "a [[1]]"], "invalid int"),
        (["infill", "--top-p", "0", "a [[1]]"], "top_p"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_missing_model_exits_1_with_one_line(capsys, tmp_path):
    code, _, err = run(capsys, "infill", "--model", str(tmp_path / "nope"), "a [[1]]")
    assert code == 1 and err.count("\n") == 1 and "no model folder" in err
    code, _, err = run(capsys, "infill", "--model", "someone/not-downloaded", "a [[1]]")
    assert code == 1 and "not downloaded" in err


def test_infill_json_and_events(capsys, tiny_model_dir, tmp_path):
    events = tmp_path / "events.jsonl"
    code, out, err = run(capsys, "infill", "--model", str(tiny_model_dir), "--json", "--events", str(events),
                         "--steps", "3", "--device", "cpu", "In the [[4]] God created the [[heaven]] and \\[[the]] earth.")
    assert code == 0, err
    data = json.loads(out)
    assert set(data) >= {"text", "spans", "nfe", "seconds"}
    text, spans = data["text"], data["spans"]
    assert text.startswith("In the ") and text.endswith(" and [[the]] earth.")
    assert text[spans[0]["end"]:spans[1]["start"]] == " God created the "
    assert spans[0]["length"] == 4
    lines = [json.loads(line) for line in events.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == data["nfe"] == 3
    assert lines[-1]["done"] and all("committed" in line for line in lines)


def test_infill_reads_stdin(capsys, monkeypatch, tiny_model_dir):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("Let there be [[2]].\n"))
    code, out, _ = run(capsys, "infill", "--model", str(tiny_model_dir), "--device", "cpu", "-")
    assert code == 0
    assert out.startswith("Let there be ") and out.endswith(".\n")


def test_literal_special_strings_stay_text_in_the_cli(capsys, tiny_model_dir):
    code, out, err = run(capsys, "infill", "--model", str(tiny_model_dir), "--json",
                         "The placeholder [MASK] marks a [[gap]]. </s> [SEP]")
    assert code == 0, err
    data = json.loads(out)
    span = data["spans"][0]
    assert data["text"].startswith("The placeholder [MASK] marks a ")
    assert data["text"][span["end"]:] == ". </s> [SEP]"


def test_allow_newlines_flag(capsys, tiny_model_dir, monkeypatch):
    seen = []
    import engine.sampler

    real = engine.sampler.stream_infill
    monkeypatch.setattr(engine.sampler, "stream_infill", lambda m, r, c=None: (seen.append(r), real(m, r, c))[1])
    for flag, expected in (("--allow-newlines", True), ("--no-allow-newlines", False), (None, None)):
        argv = ["infill", "--model", str(tiny_model_dir), "a [[1]] b"] + ([flag] if flag else [])
        assert run(capsys, *argv)[0] == 0
        assert seen[-1].allow_newlines is expected
