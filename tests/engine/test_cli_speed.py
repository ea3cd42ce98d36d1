"""`lacuna-cli infill --cache` and `lacuna-cli bench speed` on tiny models."""
import json

import pytest

from lacuna.engine.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cache_none_and_dual_fill_a_native_model(capsys, tiny_llada_dir):
    texts = []
    for cache in ("none", "dual"):
        code, out, err = run(capsys, "infill", "--model", str(tiny_llada_dir), "--cache", cache, "--json",
                             "In the beginning [[4]] the earth.")
        assert code == 0, err
        texts.append(json.loads(out)["text"])
    assert all(t.startswith("In the beginning ") and t.endswith(" the earth.") for t in texts)


def test_a_cache_the_family_lacks_exits_2_with_one_line(capsys, tiny_bert_dir):
    code, _, err = run(capsys, "infill", "--model", str(tiny_bert_dir), "--cache", "dual", "a [[2]] b")
    assert code == 2 and "no 'dual' context cache" in err and err.count("\n") == 1


@pytest.mark.parametrize("flag", ["--candidates", "--views"])
@pytest.mark.parametrize("bad", ["x", "0", "4,,8", ""])
def test_bench_speed_refuses_bad_counts(capsys, tiny_llada_dir, bad, flag):
    code, _, err = run(capsys, "bench", "speed", "--model", str(tiny_llada_dir), flag, bad)
    assert code == 2 and flag in err


def test_bench_speed_reports_four_configs_and_candidates(capsys, tiny_llada_dir):
    code, out, err = run(capsys, "bench", "speed", "--model", str(tiny_llada_dir), "--context", "60", "--span", "4",
                         "--steps", "4", "--repeats", "1", "--candidates", "1,2", "--json")
    assert code == 0, err
    entry = json.loads(out)["models"][0]
    rows = entry["speed"]["rows"]
    assert [r["config"] for r in rows] == ["a", "b", "c", "d"]
    assert all(r["nfe"] >= 1 and r["cpu_seconds"] > 0 and r["seconds"] > 0 for r in rows)
    assert [r["n"] for r in entry["candidates"]] == [1, 2]


def test_bench_speed_views_trade_accuracy_for_time(capsys, tiny_llada_dir, tmp_path):
    """Views beyond the model's context are skipped; each row has the hole's
    time and single-word restore on whole held-out chunks."""
    heldout = tmp_path / "heldout.jsonl"
    heldout.write_text("".join(json.dumps({"text": f"the heaven and the earth were made on day {i} of the week, "
                                                  "and it was good. " * 3}) + "\n" for i in range(6)))
    code, out, err = run(capsys, "bench", "speed", "--model", str(tiny_llada_dir), "--context", "60", "--span", "4",
                         "--steps", "4", "--repeats", "1", "--views", "16,32,100000", "--examples", "3",
                         "--heldout", str(heldout), "--json")
    assert code == 0, err
    views = json.loads(out)["models"][0]["views"]
    assert [r["view"] for r in views["rows"]] == [16, 32]
    assert all(r["word_n"] == 3 and 0 <= r["word_exact"] <= 1 and r["hole_seconds"] > 0 for r in views["rows"])
    assert [r["view"] for r in views["skipped"]] == [100000] and "context" in views["skipped"][0]["why"]


def test_bench_speed_refuses_views_and_caches_it_cannot_run_before_measuring(capsys, tiny_llada_dir, tiny_bert_dir):
    code, _, err = run(capsys, "bench", "speed", "--model", str(tiny_llada_dir), "--span", "4", "--views", "4,64")
    assert code == 2 and "larger than the 4-token hole" in err
    code, out, err = run(capsys, "bench", "speed", "--model", str(tiny_bert_dir), "--views", "64", "--cache", "dual")
    assert code == 2 and "no 'dual' context cache" in err and not out
    for flag, value in (("--cache", "dual"), ("--views", "64"), ("--candidates", "1,4")):
        code, _, err = run(capsys, "bench", "--model", str(tiny_llada_dir), flag, value)
        assert code == 2 and f"{flag} applies to `lacuna-cli bench speed` only" in err


@pytest.mark.parametrize("fixture", ["tiny_llada_dir", "tiny_bert_dir"])
def test_bench_overhead_runs_on_native_and_transformers_models(capsys, fixture, request):
    """The overhead bench replays the run's forward passes bare; a native model's
    default cache used to leave it no passes to replay (IndexError)."""
    folder = request.getfixturevalue(fixture)
    code, out, err = run(capsys, "bench", "--model", str(folder), "--context", "20", "--span", "4", "--steps", "2",
                         "--repeats", "1", "--json")
    assert code == 0, err
    assert json.loads(out)["overhead"]


@pytest.mark.parametrize("extra, tables", [((), False), (("--candidates", "1"), True)])
def test_cold_start_alone_measures_only_the_cold_start(capsys, tiny_llada_dir, monkeypatch, extra, tables):
    """`bench speed --cold-start N` used to run the whole speed table first (283 s on the starter)."""
    from lacuna.engine.bench import speed as bench_speed

    calls = []
    monkeypatch.setattr(bench_speed, "cold_start", lambda model, n: calls.append((model, n)) or {
        "model": model, "repeats": n, "wall_s": 1.0, "all_wall_s": [1.0], "cpu_s": 1.0, "all_cpu_s": [1.0],
        "fill_s": 0.1})
    monkeypatch.setattr(bench_speed, "speed", lambda *a, **k: calls.append("speed") or {"rows": []})
    monkeypatch.setattr(bench_speed, "candidates", lambda *a, **k: [])
    code, out, err = run(capsys, "bench", "speed", "--model", str(tiny_llada_dir), "--cold-start", "2", "--json",
                         *extra)
    assert code == 0, err
    report = json.loads(out)
    assert report["cold_start"]["repeats"] == 2 and ("speed" in calls) == tables
    assert len(report["models"]) == (1 if tables else 0)
