import json

import pytest

from lacuna.engine.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["infill", "the [[3 heaven"], "unclosed [["),
        (["infill", "the [[0]] heaven"], "at least 1 token"),
        (["infill", "--sampler", "nope", "the [[2]]"], "unknown sampler"),
        (["infill", "   "], "empty"),
        (["infill", "no holes here"], "nothing to fill"),
        (["infill", "--steps", "x", "a [[1]]"], "expected a whole number"),
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


# Issue 9: every bad command-line input ends in one clear line, exit 2 (bad input) or 1 (failure),
# no traceback, no hang; what the input alone shows is refused before any model loads. The
# subprocess cases run `python -m lacuna.engine.cli` with an isolated cache and data folder, and check
# that nothing beside them changed.

import os
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from lacuna.engine.errors import InputError
from lacuna.engine.markup import MAX_HOLE, parse

ROOT = Path(__file__).resolve().parents[2]
NO_MODEL = "/nonexistent/lacuna-model"  # if the model were looked at first, the error would name it


def _tree(root: Path, skip: tuple[Path, ...]) -> dict:
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [n for n in dirnames if here / n not in skip]
        for name in dirnames + filenames:
            st_ = (here / name).lstat()
            state[str((here / name).relative_to(root))] = (st_.st_mode, st_.st_size, st_.st_mtime_ns)
    return state


@pytest.fixture
def cli(tmp_path):
    """Run lacuna-cli in a subprocess; returns (code, stdout, stderr). Asserts one line, no traceback."""
    cache, data = tmp_path / "hf-cache", tmp_path / "lacuna-data"
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_CACHE=str(cache), LACUNA_DATA_DIR=str(data),
               HF_HUB_OFFLINE="1", PYTHONIOENCODING="utf-8")
    env.pop("LACUNA_DEBUG", None)
    before = _tree(tmp_path, (cache, data))

    def run(*argv, stdin: bytes = b"", lines: int | None = 1, timeout: float = 120):
        proc = subprocess.run([sys.executable, "-m", "lacuna.engine.cli", *argv], input=stdin, capture_output=True,
                              env=env, cwd=tmp_path, timeout=timeout)
        err = proc.stderr.decode("utf-8", "replace")
        assert "Traceback" not in err, err
        if lines is not None:
            assert len(err.splitlines()) == lines, err
        return proc.returncode, proc.stdout.decode("utf-8", "replace"), err

    run.env, run.data = env, data
    yield run
    assert _tree(tmp_path, (cache, data)) == before, "something outside the cache and data folders changed"


@pytest.mark.parametrize("argv, message", [
    (["a [[²]] b"], "not a count"),
    (["a [[٣]] b"], "not a count"),
    (["a [[0]] b"], "at least 1 token"),
    (["a [[-3]] b"], "at least 1 token"),
    (["a [[99999999999999999999]] b"], "too many tokens"),
    (["--steps", "0", "a [[2]]"], "--steps: must be between 1"),
    (["--steps", "-1", "a [[2]]"], "--steps: must be between 1"),
    (["--steps", "9" * 400, "a [[2]]"], "--steps: must be between 1"),
    (["--steps", "9" * 5000, "a [[2]]"], "--steps: must be between 1"),
    (["--seed", str(2**64), "a [[2]]"], "--seed: must be between"),
    (["--seed", str(-(2**63) - 1), "a [[2]]"], "--seed: must be between"),
    (["--top-k", "1e3", "a [[2]]"], "--top-k: expected a whole number"),
    (["--model", "", "a [[2]]"], "--model is empty"),
    (["--model", "x" * 5000, "a [[2]]"], "--model is 5000 characters long"),
    (["--model", "org/" + "x" * 300, "a [[2]]"], "characters long"),
    (["--sampler", "nope" * 2000, "a [[2]]"], "unknown sampler"),
])
def test_bad_input_is_refused_before_the_model(cli, argv, message):
    code, _, err = cli("infill", "--model", NO_MODEL, *argv) if "--model" not in argv else cli("infill", *argv)
    assert code == 2 and message in err and len(err) < 300, err


@pytest.mark.parametrize("stdin, message", [
    (b"In the [[2]] \xff\xfe was", "not valid UTF-8 text (byte 0xff at offset 13)"),
    (b"\x00\x01\x02binary [[2]]", "looks binary"),
    (b"caf\xed\xa0\x80 [[2]]", "not valid UTF-8"),  # an encoded lone surrogate
])
def test_stdin_that_is_not_utf8_text_is_refused(cli, stdin, message):
    code, _, err = cli("infill", "--model", NO_MODEL, "-", stdin=stdin)
    assert code == 2 and message in err, err


def test_argument_that_is_not_utf8_is_refused(cli):
    code, _, err = cli("infill", "--model", NO_MODEL, os.fsdecode(b"In the [[2]] \xff"))
    assert code == 2 and "TEXT is not valid UTF-8" in err
    code, _, err = cli("infill", "--model", os.fsdecode(b"caf\xff"), "a [[2]]")
    assert code == 2 and "--model is not valid UTF-8" in err


def test_config_that_is_not_an_object_fails_in_one_line(cli):
    folder = cli.data / "not-a-model"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("[1, 2]")
    code, _, err = cli("infill", "--model", str(folder), "a [[2]]")
    assert code == 1 and "is not a JSON object" in err


def test_events_file_is_checked_before_the_model(cli, tmp_path):
    code, _, err = cli("infill", "--model", NO_MODEL, "--events", str(tmp_path / "no" / "e.jsonl"), "a [[2]]")
    assert code == 2 and "does not exist" in err
    code, _, err = cli("infill", "--model", NO_MODEL, "--events", str(tmp_path), "a [[2]]")
    assert code == 2 and "is a folder" in err


def test_models_without_a_command_prints_the_usage(cli):
    code, _, err = cli("models", lines=None)
    assert code == 2 and "usage: lacuna-cli models" in err and "pull" in err and "verify" in err
    assert err.strip().splitlines()[-1] == "lacuna-cli: models: choose a command: list, pull, verify, rm, fit, recommend, add"


def test_models_list_into_head_ends_quietly(cli):
    """A reader that stops early (`| head -1`) gets no BrokenPipeError on stderr."""
    cli.data.mkdir()
    many = [{"repo": f"org/model-{i:05d}", "family": "bert"} for i in range(3000)]
    (cli.data / "catalog.json").write_text(json.dumps({"models": many}))
    proc = subprocess.run(f"'{sys.executable}' -m lacuna.engine.cli models list | head -1", shell=True,
                          capture_output=True, env=cli.env, timeout=120)
    assert proc.stdout.decode().startswith("ID ") and proc.stderr == b""


def _starter_facts():
    """The bundled model's family, parameters and size, read from its own files (not hard-coded)."""
    from safetensors import safe_open

    from lacuna.engine import resources
    from lacuna.engine.hub.catalog import catalog_entry, family_from_config

    folder = resources.path(catalog_entry("starter")["bundled"])
    family = family_from_config(json.loads((folder / "config.json").read_text()))
    params = 0
    for weights in folder.glob("*.safetensors"):
        with safe_open(str(weights), "pt") as fh:
            for name in fh.keys():
                shape = fh.get_slice(name).get_shape()
                n = 1
                for dim in shape:
                    n *= dim
                params += n
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return family, params, size


def test_models_agree_about_the_bundled_starter(cli):
    code, out, err = cli("models", "list", "--json", lines=0)
    assert code == 0, err
    row = {r["id"]: r for r in json.loads(out)}["starter"]
    family, params, size = _starter_facts()
    assert (row["family"], row["parameters"], row["size"], row["status"]) == (family, params, size, "bundled")
    assert row["loadable"]
    code, out, err = cli("models", "verify", "starter", lines=0)
    assert code == 0 and "bundled with Lacuna" in out and "pull" not in out + err
    code, _, err = cli("models", "rm", "starter")
    assert code == 2 and "ships with Lacuna" in err and "pull" not in err


@pytest.mark.parametrize("name, content", [
    ("catalog.json", "{not json"), ("catalog.json", '{"models": 5}'), ("catalog.json", "[1]"),
    ("catalog.json", '{"models": [{"repo": "../../x"}, {"id": 3, "repo": "a/b"}]}'),
    ("installs.json", "\xff garbage"), ("installs.json", '{"models": []}'),
    ("installs.json", '{"models": {"a/b": {"repo": "a/b", "commit": "../../..", "files": []}}}'),
])
def test_corrupt_user_files_are_ignored_and_named(cli, name, content):
    cli.data.mkdir()
    (cli.data / name).write_text(content, encoding="latin-1")
    code, out, err = cli("models", "list")
    assert code == 0 and "starter" in out
    assert "warning:" in err and name in err


@pytest.mark.slow
def test_infill_with_the_bundled_model_survives_corrupt_user_files(cli):
    cli.data.mkdir()
    (cli.data / "catalog.json").write_text("{broken")
    code, out, err = cli("infill", "--steps", "2", "In the beginning God created the [[2]].")
    assert code == 0 and out.startswith("In the beginning God created the ")
    assert "warning:" in err and "catalog.json" in err


def test_cli_pull_with_a_path_as_revision_is_refused(cli):
    code, _, err = cli("models", "pull", "org/name", "--revision", "../../../outside/x")
    assert code == 2 and "'../../../outside/x'" in err and "org/name" in err


def test_many_steps_on_ancestral_are_capped_and_said(capsys, tiny_model_dir):
    code, out, err = run(capsys, "infill", "--model", str(tiny_model_dir), "--device", "cpu",
                         "--steps", "1000000000", "--sampler", "ancestral", "--json", "a [[2]] b")
    assert code == 0, err
    assert "capped at 1024" in err and json.loads(out)["steps"] <= 1024


def test_failed_run_keeps_the_old_events_file(capsys, tiny_model_dir, tmp_path, monkeypatch):
    import lacuna.engine.sampler
    from lacuna import engine

    events = tmp_path / "events.jsonl"
    events.write_text("old run\n")
    real = engine.sampler.stream_infill

    def failing(*a, **kw):
        for i, event in enumerate(real(*a, **kw)):
            yield event
            if i == 0:
                raise RuntimeError("the device fell over")

    monkeypatch.setattr(engine.sampler, "stream_infill", failing)
    code, _, err = run(capsys, "infill", "--model", str(tiny_model_dir), "--device", "cpu", "--steps", "3",
                       "--events", str(events), "a [[3]] b")
    assert code == 1 and "the device fell over" in err
    assert events.read_text() == "old run\n" and [p.name for p in tmp_path.iterdir()] == ["events.jsonl"]


def test_full_disk_leaves_no_partial_events_file(capsys, tiny_model_dir, tmp_path, monkeypatch):
    import errno

    from lacuna.engine import cli as cli_mod

    def full(self, record):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cli_mod._EventsFile, "write", full)
    code, _, err = run(capsys, "infill", "--model", str(tiny_model_dir), "--device", "cpu", "--steps", "2",
                       "--events", str(tmp_path / "e.jsonl"), "a [[2]] b")
    assert code == 1 and "could not write" in err and "No space left" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("[]\\0123456789-+ a²٣Ⅻ")), max_size=24))
def test_property_markup_either_parses_or_says_why(marked):
    """Any text gives spans with sane lengths or one InputError; never another exception."""
    try:
        text, spans = parse(marked)
    except InputError as err:
        assert "\n" not in str(err)
        return
    assert sum(s.length or 0 for s in spans) <= MAX_HOLE
    assert all(s.length is None or s.length >= 1 for s in spans) and all(s.end <= len(text) for s in spans)


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
    import lacuna.engine.sampler
    from lacuna import engine

    real = engine.sampler.stream_infill
    monkeypatch.setattr(engine.sampler, "stream_infill", lambda m, r, c=None: (seen.append(r), real(m, r, c))[1])
    for flag, expected in (("--allow-newlines", True), ("--no-allow-newlines", False), (None, None)):
        argv = ["infill", "--model", str(tiny_model_dir), "a [[1]] b"] + ([flag] if flag else [])
        assert run(capsys, *argv)[0] == 0
        assert seen[-1].allow_newlines is expected


@pytest.mark.parametrize("holes, steps", [(1100, []), (300, ["--steps", "5000"])])
def test_a_refused_canvas_gets_its_error_alone(capsys, tiny_model_dir, holes, steps):
    """More holes than the context holds: one line, the error, no note about capping
    steps first (1100 one-token holes plan 1100 steps; 300 with --steps 5000 too)."""
    from lacuna.engine import load_model

    context = load_model(str(tiny_model_dir), device="cpu").context_length
    text = " ".join(["a [[1]]"] * max(holes, context + 1))
    code, _, err = run(capsys, "infill", "--model", str(tiny_model_dir), "--device", "cpu", *steps, text)
    assert code != 0 and err.count("\n") == 1 and "capped" not in err and "holds" in err


@pytest.mark.parametrize("given, runs", [("ancestral_nocache", "ancestral_recompute"),
                                         ("ancestral_recompute", "ancestral_recompute"),
                                         ("ancestral_analytic", "ancestral_analytic")])
def test_a_policy_is_taken_by_its_name_or_its_older_name(capsys, tiny_model_dir, monkeypatch, given, runs):
    # issue 22: "ancestral_nocache" was renamed; scripts that pass the old name keep working
    seen = []
    import lacuna.engine.sampler
    from lacuna import engine

    real = engine.sampler.stream_infill
    monkeypatch.setattr(engine.sampler, "stream_infill", lambda m, r, c=None: (seen.append(r), real(m, r, c))[1])
    code, _, err = run(capsys, "infill", "--model", str(tiny_model_dir), "--device", "cpu", "--steps", "3",
                       "--sampler", given, "a [[2]] b")
    assert code == 0, err
    assert seen[-1].sampler == runs


@pytest.mark.parametrize("name", ["ancestral_no_cache", "Ancestral", "ancestral_nocache "])
def test_a_near_miss_policy_name_is_refused_with_the_names(capsys, name):
    code, _, err = run(capsys, "infill", "--sampler", name, "a [[2]] b")
    assert code == 2 and err.count("\n") == 1 and "unknown sampler" in err and "ancestral_recompute" in err


def test_the_cli_caps_steps_where_the_sampler_does():
    import lacuna.engine.cli
    from lacuna import engine
    import lacuna.engine.sampler
    from lacuna import engine
    from lacuna.engine import InfillRequest, Span

    assert engine.cli.MAX_STEPS == engine.sampler.MAX_STEPS
    assert engine.sampler.planned_steps(InfillRequest("ab", (Span(0, 1),), steps=10**9)) == engine.cli.MAX_STEPS


# Issue 23: [[?]] (the model chooses the length) and [[~N]] (about N tokens).
from lacuna.engine.types import Span  # noqa: E402 - the issue-23 section's own import
@pytest.mark.parametrize("marked, plain, lengths", [
    ("a [[?]] b", "a  b", ["auto"]),
    ("a [[~4]] b", "a  b", ["~4"]),
    ("[[~+03]]x[[2]]y[[?]]", "xy", ["~3", 2, "auto"]),
    ("\\[[?]] [[~x]] [[?x]]", "[[?]] ~x ?x", [None, None]),  # a literal, and text to regenerate
])
def test_markup_auto_holes(marked, plain, lengths):
    text, spans = parse(marked)
    assert text == plain and [s.length for s in spans] == lengths


@pytest.mark.parametrize("marked, message", [
    ("a [[~]] b", "has no count"),
    ("a [[~0]] b", "at least 1 token"),
    ("a [[~-2]] b", "at least 1 token"),
    ("a [[~٣]] b", "e.g. [[~3]]"),
    ("a [[~100001]] b", "too many tokens"),
    ("[[~60000]] [[50000]]", "too many tokens"),  # about-N counts in the total too
])
def test_bad_auto_holes_are_refused_in_one_line(capsys, marked, message):
    code, _, err = run(capsys, "infill", "--model", NO_MODEL, marked)
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err


_PIECE = st.one_of(
    st.text(alphabet="ab ~?", min_size=1, max_size=4).map(lambda t: ("plain", t)),
    st.integers(1, 50).map(lambda n: ("count", n)),
    st.integers(1, 50).map(lambda n: ("about", n)),
    st.just(("auto", None)),
    st.text(alphabet="ab ~?", min_size=1, max_size=4).filter(lambda t: t != "?" and not t.startswith("~"))
    .map(lambda t: ("text", t)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_PIECE, max_size=6))
def test_property_markup_gives_each_hole_its_span(pieces):
    """Markup assembled from known pieces parses back to exactly those spans and that plain text."""
    marked, plain, expected = "", "", []
    for kind, value in pieces:
        if kind == "plain":
            marked, plain = marked + value.replace("[", ""), plain + value.replace("[", "")
            continue
        body = {"count": str(value), "about": f"~{value}", "auto": "?", "text": value}[kind]
        length = {"count": value, "about": f"~{value}", "auto": "auto", "text": None}[kind]
        start = len(plain)
        if kind == "text":
            plain += value
        expected.append(Span(start, len(plain), length=length))
        marked += f"[[{body}]]"
    text, spans = parse(marked)
    assert text == plain and spans == expected
