"""Shared fixtures: tiny models built once per session, an offline, isolated HF home."""
from __future__ import annotations

import os

# Isolate every test run from the user's Hugging Face cache and the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest

from tests.support.tiny import (
    build_tiny_bert, build_tiny_modernbert, build_tiny_roberta_like, build_tiny_sentencepiece,
)


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory):
    """Lacuna's wheel, built once per session from a copy of this checkout."""
    pytest.importorskip("setuptools")
    from tests.support.wheel import build_wheel

    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A folder holding a tiny random ModernBERT with a byte-level BPE tokenizer."""
    return build_tiny_modernbert(tmp_path_factory.mktemp("tiny-modernbert"))


@pytest.fixture(scope="session")
def llada_instruct_dir(tmp_path_factory):
    """The tiny LLaDA with LLaDA-8B-Instruct's real chat template (tests.support.tiny_instruct)."""
    from tests.support.tiny_instruct import build_tiny_llada_instruct

    return build_tiny_llada_instruct(tmp_path_factory.mktemp("llada-instruct"))


@pytest.fixture(scope="session")
def dream_instruct_dir(tmp_path_factory):
    """The tiny Dream with Dream-v0-Instruct-7B's real chat template."""
    from tests.support.tiny_instruct import build_tiny_dream_instruct

    return build_tiny_dream_instruct(tmp_path_factory.mktemp("dream-instruct"))


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory):
    """A folder holding a tiny random BERT with a WordPiece tokenizer."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    from lacuna.engine import load_model

    return load_model(str(tiny_model_dir), device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def tiny_bert(tiny_bert_dir):
    from lacuna.engine import load_model

    return load_model(str(tiny_bert_dir), device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def tiny_llada_dir(tmp_path_factory):
    """A tiny random LLaDA in the official layout (config.json, safetensors, tokenizer.json)."""
    from tests.support.tiny_llada import build_tiny_llada

    return build_tiny_llada(tmp_path_factory.mktemp("tiny-llada"))


@pytest.fixture(scope="session")
def tiny_sp_dir(tmp_path_factory):
    """A tiny random ModernBERT with a Llama-style SentencePiece tokenizer (▁, byte fallback)."""
    return build_tiny_sentencepiece(tmp_path_factory.mktemp("tiny-sentencepiece"))


@pytest.fixture(scope="session")
def tiny_sp(tiny_sp_dir):
    from lacuna.engine import load_model

    return load_model(str(tiny_sp_dir), device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def tiny_roberta_dir(tmp_path_factory):
    """Byte-level BPE with RoBERTa's specials, unnamed added specials and 13 padded output rows."""
    return build_tiny_roberta_like(tmp_path_factory.mktemp("tiny-roberta"))


@pytest.fixture(scope="session")
def tiny_roberta(tiny_roberta_dir):
    from lacuna.engine import load_model

    return load_model(str(tiny_roberta_dir), device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def tiny_dream_dir(tmp_path_factory):
    """A tiny random Dream as Dream-org ships it (vocab.json + merges.txt, code files that must not run)."""
    from tests.support.tiny_dream import build_tiny_dream

    return build_tiny_dream(tmp_path_factory.mktemp("tiny-dream"))


@pytest.fixture(scope="session")
def tiny_llada_moe_dir(tmp_path_factory):
    """A tiny random LLaDA-MoE in the official layout (tokenizer.json, code files that must not run)."""
    from tests.support.tiny_dream import build_tiny_llada_moe

    return build_tiny_llada_moe(tmp_path_factory.mktemp("tiny-llada-moe"))
