"""The Hub token goes only where the user said it belongs (engine.hub.hubapi.token_allowed):
the official https://huggingface.co, or an endpoint listed in LACUNA_HF_TOKEN_ENDPOINTS,
and never over plain http to another machine, listed or not (issue 20)."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lacuna.engine.hub import hubapi
from lacuna.engine.hub.download import pull
from lacuna.engine.hub.errors import AccessDenied

from .conftest import REPO, fast_options


def test_a_token_is_not_sent_to_a_mirror_the_user_did_not_list(tiny_repo, hub, monkeypatch):
    # issue 20's input: a stored token and HF_ENDPOINT naming a plain-http mirror
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    monkeypatch.delenv(hubapi.TOKEN_ENDPOINTS_VAR, raising=False)
    assert pull(REPO, options=fast_options())["verified"]
    assert hub.log and all(r.authorization is None for r in hub.log)


def test_a_listed_endpoint_on_this_machine_gets_the_token(tiny_repo, hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    monkeypatch.setenv(hubapi.TOKEN_ENDPOINTS_VAR, f"https://mirror.example.org, {hub.url}/")
    assert pull(REPO, options=fast_options())["verified"]
    resolve = [r for r in hub.log if "/resolve/" in r.path or r.path.startswith("/api/")]
    assert resolve and all(r.authorization == "Bearer hf_secret" for r in resolve)
    # the CDN route a file redirects to is another path of the same origin, but a redirect: never
    assert all(r.authorization is None for r in hub.log if r.path.startswith("/lfs-cdn/"))


def test_a_gated_repo_on_an_unlisted_mirror_names_the_setting(hub, hub_model_files, monkeypatch):
    hub.add_repo("gated-org/tiny", hub_model_files, gated=True)
    hub.repos["gated-org/tiny"].authorized_tokens.add("hf_good")
    monkeypatch.setenv("HF_TOKEN", "hf_good")
    monkeypatch.delenv(hubapi.TOKEN_ENDPOINTS_VAR, raising=False)
    with pytest.raises(AccessDenied) as err:
        pull("gated-org/tiny", options=fast_options())
    message = str(err.value)
    assert hubapi.TOKEN_ENDPOINTS_VAR in message and hub.url in message and "\n" not in message
    assert all(r.authorization is None for r in hub.log)
    monkeypatch.setenv(hubapi.TOKEN_ENDPOINTS_VAR, hub.url)
    assert pull("gated-org/tiny", options=fast_options())["verified"]


@pytest.mark.parametrize("endpoint, listed, url, allowed", [
    ("https://huggingface.co", "", "https://huggingface.co/api/models/a/b", True),
    ("https://huggingface.co/", "", "https://huggingface.co:443/x", True),
    # the official host over plain http is not the official endpoint
    ("http://huggingface.co", "", "http://huggingface.co/x", False),
    ("http://huggingface.co", "http://huggingface.co", "http://huggingface.co/x", False),
    ("https://mirror.example.org", "", "https://mirror.example.org/x", False),
    ("https://mirror.example.org", "https://mirror.example.org/some/path", "https://mirror.example.org/x", True),
    ("https://mirror.example.org", "https://mirror.example.org:8443", "https://mirror.example.org/x", False),
    # listed, but plain http to another machine: the token could be read on the way
    ("http://mirror.example.org", "http://mirror.example.org", "http://mirror.example.org/x", False),
    ("http://10.0.0.5:8080", "http://10.0.0.5:8080", "http://10.0.0.5:8080/x", False),
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080", "http://127.0.0.1:8080/x", True),
    ("http://127.0.0.1:8080", "", "http://127.0.0.1:8080/x", False),
    ("http://localhost:9000", "http://localhost:9000", "http://localhost:9000/x", True),
    ("http://[::1]:9000", "http://[::1]:9000", "http://[::1]:9000/x", True),
    # a listed endpoint that is not the current one, and a URL off the endpoint's origin
    ("https://huggingface.co", "https://mirror.example.org", "https://mirror.example.org/x", False),
    ("https://huggingface.co", "", "https://cdn.huggingface.co/x", False),
    ("https://huggingface.co", "", "ftp://huggingface.co/x", False),
])
def test_token_allowed(monkeypatch, endpoint, listed, url, allowed):
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setenv(hubapi.TOKEN_ENDPOINTS_VAR, listed)
    assert hubapi.token_allowed(url) is allowed


_hosts = st.one_of(
    st.sampled_from(["huggingface.co", "localhost", "127.0.0.1", "127.8.9.1", "[::1]", "10.1.2.3",
                     "mirror.example.org", "hf-mirror.com", "[2001:db8::1]"]),
    st.from_regex(r"[a-z][a-z0-9-]{0,10}\.[a-z]{2,5}", fullmatch=True),
)
_origins = st.builds(lambda scheme, host, port: f"{scheme}://{host}" + (f":{port}" if port else ""),
                     st.sampled_from(["http", "https"]), _hosts, st.sampled_from([None, 80, 443, 8080]))


@settings(max_examples=300, deadline=None)
@given(endpoint=_origins, listed=st.lists(_origins, max_size=3), url=_origins, path=st.sampled_from(["", "/api/x"]))
def test_the_token_never_goes_in_plain_http_to_another_machine(endpoint, listed, url, path):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_ENDPOINT", endpoint)
        mp.setenv(hubapi.TOKEN_ENDPOINTS_VAR, ",".join(listed))
        if not hubapi.token_allowed(url + path):
            return
        scheme, host, port = hubapi._origin(url)
        assert scheme == "https" or host in ("localhost", "::1") or host.startswith("127.")
        # and only to the endpoint, which the user named (or is the official Hub)
        assert hubapi.same_origin(url, endpoint)
        assert any(hubapi.same_origin(url, a) for a in [hubapi.OFFICIAL_ENDPOINT, *listed])
