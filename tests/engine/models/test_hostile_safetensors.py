"""Weights files a hostile or broken folder can hold: a FIFO, and headers whose tensors overlap.

A FIFO named model.safetensors (or one of a glob's *.safetensors) used to hang
the loader forever; two tensors over the same bytes were accepted. The format
(safetensors' own spec) says the tensors tile the data buffer exactly, in
offset order, from its first byte: anything else is refused, naming the file.
"""
from __future__ import annotations

import json
import os
import struct
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lacuna.engine import ModelLoadError, load_model
from lacuna.engine.models.weights import checkpoint_files, read_header


def _write(path, header: dict, data: bytes) -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


def _tiling(sizes):
    header, at = {}, 0
    for i, n in enumerate(sizes):
        header[f"t{i}"] = {"dtype": "F32", "shape": [n], "data_offsets": [at, at + 4 * n]}
        at += 4 * n
    return header, at


def _refuses_in_time(call) -> str:
    """Run ``call`` in a thread; it must raise ModelLoadError within 20 s (a hang fails the test)."""
    out: dict = {}

    def run():
        try:
            call()
        except ModelLoadError as exc:
            out["message"] = str(exc)
        except Exception as exc:  # noqa: BLE001
            out["other"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(20)
    assert not thread.is_alive(), "the loader hung"
    assert "message" in out, out
    return out["message"]


@pytest.mark.parametrize("name", ["model.safetensors", "model-00001-of-00001.safetensors"])
def test_a_fifo_as_the_weights_is_refused_not_waited_on(tiny_llada_dir, tmp_path, name):
    folder = tmp_path / "m"
    folder.mkdir()
    for f in ("config.json", "tokenizer.json"):
        (folder / f).write_bytes((tiny_llada_dir / f).read_bytes())
    os.mkfifo(folder / name)
    message = _refuses_in_time(lambda: load_model(str(folder), device="cpu"))
    assert name in message and "not a regular file" in message


def test_a_fifo_named_by_an_index_is_refused(tmp_path):
    os.mkfifo(tmp_path / "model-00001-of-00001.safetensors")
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"w": "model-00001-of-00001.safetensors"}}))
    message = _refuses_in_time(lambda: checkpoint_files(tmp_path))
    assert "model-00001-of-00001.safetensors" in message


def test_overlapping_tensors_are_refused(tmp_path):
    header = {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
              "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}
    _write(tmp_path / "model.safetensors", header, bytes(24))
    with pytest.raises(ModelLoadError, match=r"tensor b overlaps the tensor before it"):
        read_header(tmp_path / "model.safetensors")


def test_the_same_bytes_for_two_tensors_are_refused(tmp_path):
    header = {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
              "b": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}
    _write(tmp_path / "model.safetensors", header, bytes(16))
    with pytest.raises(ModelLoadError, match="overlaps"):
        read_header(tmp_path / "model.safetensors")


def test_a_gap_in_the_data_is_refused(tmp_path):
    header = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
              "b": {"dtype": "F32", "shape": [2], "data_offsets": [12, 20]}}
    _write(tmp_path / "model.safetensors", header, bytes(20))
    with pytest.raises(ModelLoadError, match="leaves a gap"):
        read_header(tmp_path / "model.safetensors")


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=2, max_size=6), st.data())
def test_only_the_exact_tiling_is_accepted(tmp_path_factory, sizes, data):
    """Property: a valid tiling reads back; moving any one tensor's offsets by a whole
    number of elements (keeping its size) is refused."""
    folder = tmp_path_factory.mktemp("st")
    header, total = _tiling(sizes)
    _write(folder / "ok.safetensors", header, bytes(total))
    assert [i.name for i in read_header(folder / "ok.safetensors")] == list(header)
    victim = f"t{data.draw(st.integers(0, len(sizes) - 1))}"
    shift = 4 * data.draw(st.integers(-6, 6).filter(bool))
    begin, end = header[victim]["data_offsets"]
    if begin + shift < 0 or end + shift > total:
        return
    header[victim]["data_offsets"] = [begin + shift, end + shift]
    _write(folder / "bad.safetensors", header, bytes(total))
    with pytest.raises(ModelLoadError):
        read_header(folder / "bad.safetensors")


@pytest.mark.parametrize("garbage", [b"\x92\x93{", b"{{{{"])
def test_a_damaged_header_names_the_file_and_the_repair_not_the_codec(tmp_path, garbage):
    raw = b'{"t0": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}'
    raw = garbage + raw[len(garbage):]
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(4))
    with pytest.raises(ModelLoadError) as err:
        read_header(tmp_path / "model.safetensors")
    message = str(err.value)
    assert "model.safetensors is damaged" in message and "models pull" in message
    assert "codec" not in message and "Expecting" not in message
