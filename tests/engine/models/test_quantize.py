"""Chunked 8-bit and NF4 quantisation (engine.models.quantize) is bit-identical to
bitsandbytes quantising the whole matrix, and biased layers quantise too."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lacuna.engine.models import quantize
from lacuna.engine.models.weights import Rows

bnb = pytest.importorskip("bitsandbytes")
CPU = torch.device("cpu")


def _limited(tensor: torch.Tensor, max_rows: int) -> Rows:
    rows = Rows.of(tensor)
    return Rows(rows.shape, rows.dtype, max_rows, rows.read)


def _whole_nf4(w: torch.Tensor):
    return bnb.nn.Params4bit(w.clone(), requires_grad=False, quant_type="nf4", compress_statistics=True).to("cpu")


def _assert_same_nf4(got, want):
    assert torch.equal(got.data, want.data)
    a, b = got.quant_state, want.quant_state
    assert torch.equal(a.absmax, b.absmax) and torch.equal(a.offset, b.offset)
    assert torch.equal(a.state2.absmax, b.state2.absmax) and torch.equal(a.state2.code, b.state2.code)
    assert torch.equal(a.code, b.code) and a.shape == b.shape and a.dtype == b.dtype
    assert a.blocksize == b.blocksize and a.state2.blocksize == b.state2.blocksize


@pytest.mark.parametrize("shape, max_rows", [((192, 80), 64), ((257, 96), 70), ((130, 33), 64), ((3, 21), 64)])
def test_nf4_in_row_chunks_is_bit_identical_to_the_whole_matrix(shape, max_rows, monkeypatch):
    # 33 columns: a block of 64 spans rows, so chunks must be 64 rows long; 3 x 21: an odd count and a part block
    monkeypatch.setattr(quantize, "CHUNK_PARAMETERS", 1)  # as many chunks as the alignment allows
    w = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    _assert_same_nf4(quantize.nf4_weight(_limited(w, max_rows), CPU), _whole_nf4(w))


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(1, 200), cols=st.integers(1, 140), chunk=st.integers(1, 4096), seed=st.integers(0, 99))
def test_nf4_chunking_never_changes_a_bit(rows, cols, chunk, seed):
    w = torch.randn((rows, cols), generator=torch.Generator().manual_seed(seed)).to(torch.bfloat16)
    old = quantize.CHUNK_PARAMETERS
    quantize.CHUNK_PARAMETERS = chunk
    try:
        got = quantize.nf4_weight(_limited(w, 64), CPU)
    finally:
        quantize.CHUNK_PARAMETERS = old
    _assert_same_nf4(got, _whole_nf4(w))


@settings(max_examples=20, deadline=None)
@given(rows=st.integers(1, 150), cols=st.integers(1, 90), chunk=st.integers(1, 2048), seed=st.integers(0, 99))
def test_int8_in_row_chunks_is_bit_identical_to_the_whole_matrix(rows, cols, chunk, seed):
    w = torch.randn((rows, cols), generator=torch.Generator().manual_seed(seed)).to(torch.bfloat16)
    want = bnb.nn.Int8Params(w.clone(), requires_grad=False, has_fp16_weights=False).to("cpu")
    old = quantize.CHUNK_PARAMETERS
    quantize.CHUNK_PARAMETERS = chunk
    try:
        got = quantize.int8_weight(_limited(w, 7), CPU)
    finally:
        quantize.CHUNK_PARAMETERS = old
    assert torch.equal(got.data, want.data) and torch.equal(got.SCB, want.SCB)


@pytest.mark.parametrize("kind, cls", [("nf4", "Linear4bit"), ("int8", "Linear8bitLt")])
def test_a_biased_layer_quantises_with_its_bias(kind, cls):
    torch.manual_seed(0)
    layer = torch.nn.Linear(64, 48, bias=True).to(torch.bfloat16)
    layer.bias.data.uniform_(-1, 1)
    q = quantize.quantized_linear(kind, layer, Rows.of(layer.weight.data), CPU, torch.bfloat16)
    assert type(q).__name__ == cls and torch.equal(q.bias.data, layer.bias.data)
    x = torch.randn(3, 64, dtype=torch.bfloat16)
    got = q(x).float()
    want = layer(x).float()
    no_bias = (q(x) - q.bias).float()
    assert torch.corrcoef(torch.stack([got.flatten(), want.flatten()]))[0, 1] > 0.98
    # the bias is added: without it the output is off by about the bias
    assert (got - no_bias - layer.bias.float()).abs().max() < 0.1


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_a_load_read_in_many_small_chunks_holds_exactly_the_stored_weights(dtype, tiny_dream_dir, monkeypatch):
    """Casting (the tiny Dream is stored in bf16) and copying row chunk by row chunk,
    with chunks far smaller than any tensor, changes no value."""
    from safetensors.torch import load_file

    from lacuna.engine import load_model
    from lacuna.engine.models import weights

    monkeypatch.setattr(weights, "CHUNK_BYTES", 16)  # every tensor of 64+ rows is read in several chunks
    model = load_model(str(tiny_dream_dir), device="cpu", dtype=dtype)
    stored = load_file(str(tiny_dream_dir / "model.safetensors"))
    state = model.network.state_dict()
    assert set(stored) <= set(state)
    for name, value in stored.items():
        assert torch.equal(state[name], value.to(getattr(torch, dtype))), name


def test_nf4_load_in_small_chunks_equals_bitsandbytes_on_whole_matrices(tiny_dream_dir, monkeypatch):
    from lacuna.engine import load_model
    from lacuna.engine.models import weights

    monkeypatch.setattr(weights, "CHUNK_BYTES", 16)
    monkeypatch.setattr(quantize, "CHUNK_PARAMETERS", 64)
    model = load_model(str(tiny_dream_dir), device="cpu", dtype="bfloat16", quantization="nf4")
    from safetensors.torch import load_file

    stored = load_file(str(tiny_dream_dir / "model.safetensors"))
    layer = model.network.model.layers[0].mlp.down_proj
    _assert_same_nf4(layer.weight, _whole_nf4(stored["model.layers.0.mlp.down_proj.weight"].to(torch.bfloat16)))


@pytest.mark.parametrize("kind", ["nf4", "int8"])
def test_a_bias_stored_after_its_weight_reaches_the_quantised_layer(kind, tiny_dream_dir, tmp_path):
    """The biases in a later shard than the weights: the quantised layer is installed
    first, and its bias is filled when the loader reaches it. Same logits as the
    one-file checkpoint (where each bias comes before its weight)."""
    import json
    import shutil

    from safetensors.torch import load_file, save_file

    from lacuna.engine import load_model

    folder = tmp_path / "sharded"
    shutil.copytree(tiny_dream_dir, folder)
    state = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    biases = {k: v for k, v in state.items() if k.endswith(".bias")}
    rest = {k: v for k, v in state.items() if k not in biases}
    save_file(rest, str(folder / "model-00001-of-00002.safetensors"))
    save_file(biases, str(folder / "model-00002-of-00002.safetensors"))
    weight_map = {**{k: "model-00001-of-00002.safetensors" for k in rest},
                  **{k: "model-00002-of-00002.safetensors" for k in biases}}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    one_file = load_model(str(tiny_dream_dir), device="cpu", dtype="bfloat16", quantization=kind)
    sharded = load_model(str(folder), device="cpu", dtype="bfloat16", quantization=kind)
    q = sharded.network.model.layers[0].self_attn.q_proj
    assert type(q).__name__ in ("Linear4bit", "Linear8bitLt") and not q.bias.is_meta
    assert torch.equal(q.bias.data, biases["model.layers.0.self_attn.q_proj.bias"].to(torch.bfloat16))
    ids = torch.tensor([7, 8, sharded.mask_id, sharded.mask_id, 9, 10])
    assert torch.equal(sharded.logits(ids, torch.tensor([2, 3])), one_file.logits(ids, torch.tensor([2, 3])))
