"""A catalog id or a Hub repo id with a dot in it ("llada-1.5", "GSAI-ML/LLaDA-1.5",
"Qwen/Qwen2.5-0.5B") names a model in the cache, not a file path: loading one that
is not downloaded says how to pull it, never "no model folder"."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lacuna.engine.errors import ModelLoadError
from lacuna.engine.models.loader import resolve_path


@pytest.fixture(autouse=True)
def empty_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("LACUNA_DATA_DIR", str(tmp_path / "lacuna-data"))


@pytest.mark.parametrize("name", ["llada-1.5", "GSAI-ML/LLaDA-1.5", "dllm-hub/ModernBERT-base-chat-v0.1"])
def test_a_model_name_with_a_dot_is_looked_up_in_the_cache(name):
    with pytest.raises(ModelLoadError, match="is not downloaded: run `lacuna-cli models pull"):
        resolve_path(name)


@pytest.mark.parametrize("name", ["model.safetensors", "./llada-1.5", "some/deep/folder"])
def test_a_missing_path_is_still_called_a_missing_folder(name):
    with pytest.raises(ModelLoadError, match="no model folder"):
        resolve_path(name)


_part = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,10}(\.[A-Za-z0-9]{1,4}){1,2}", fullmatch=True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(org=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9-]{0,10}", fullmatch=True), name=_part)
def test_any_repo_id_with_dots_names_the_pull_command(org, name):
    with pytest.raises(ModelLoadError) as info:
        resolve_path(f"{org}/{name}")
    assert "models pull" in str(info.value) and "no model folder" not in str(info.value)
