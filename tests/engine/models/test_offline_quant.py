"""8-bit and 4-bit loading never reaches a hub (issue 20): bitsandbytes, imported on a CPU
with AVX512-BF16 or AMX, asks the ``kernels`` package for
kernels-community/quantization-bitsandbytes (3 requests to HF_ENDPOINT, two with the
user's token). engine.models.quantize imports it with ``kernels`` hidden."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lacuna.engine.models import quantize

ROOT = Path(__file__).resolve().parents[3]


class CountingHub:
    """An HTTP server that answers 404 to everything and logs (method, path, Authorization)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str | None]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                hub.requests.append((self.command, self.path, self.headers.get("Authorization")))
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_HEAD = do_POST = do_PUT = _any

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def counting_hub():
    hub = CountingHub()
    yield hub
    hub.close()


# What bitsandbytes does at import (backends/cpu/ops.py, 0.48+), with a kernels package that
# asks the Hub as the real one does: the fakes let this run where neither is installed.
FAKE_KERNELS = '''
import os, urllib.request
def get_kernel(repo, version=None):
    req = urllib.request.Request(os.environ["HF_ENDPOINT"] + "/api/models/" + repo,
                                 headers={"Authorization": "Bearer " + os.environ["HF_TOKEN"]})
    try:
        urllib.request.urlopen(req, timeout=10)
    except Exception:
        pass
    raise RuntimeError("no kernel")
'''
FAKE_BITSANDBYTES = '''
import logging
try:
    from kernels import get_kernel
    get_kernel("kernels-community/quantization-bitsandbytes", version=1)
except Exception as exc:
    logging.getLogger("bitsandbytes.backends.cpu.ops").warning(
        "Failed to load CPU gemm_4bit_forward from kernels-community: %s", exc)
'''


@pytest.fixture
def fake_packages(tmp_path, monkeypatch, counting_hub):
    for name, source in (("kernels", FAKE_KERNELS), ("bitsandbytes", FAKE_BITSANDBYTES)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("kernels", "bitsandbytes"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", counting_hub.url)
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    return counting_hub


@pytest.mark.parametrize("kernels_imported_before", [False, True])
def test_importing_bitsandbytes_cannot_reach_a_hub(fake_packages, kernels_imported_before, caplog):
    hub = fake_packages
    before = None
    if kernels_imported_before:  # another library of the process already uses kernels
        import kernels as before

        with pytest.raises(RuntimeError):
            before.get_kernel("anything")
        assert len(hub.requests) == 1  # the counting server sees what the fake asks: this test can fail
        hub.requests.clear()
    bnb = quantize.import_bitsandbytes()
    assert bnb.__file__.startswith(str(Path(sys.path[0])))
    assert hub.requests == []
    # kernels is back as it was: hidden only while bitsandbytes imported
    assert sys.modules.get("kernels") is before
    assert "kernels-community" not in caplog.text  # the notice of our own choice is not logged


# The real thing, in a fresh process: bitsandbytes imports once per process, and the load and
# fill of the issue (nf4 and int8 on a CPU) must make no request at all.
SCRIPT = textwrap.dedent('''
    import json, sys
    from lacuna.engine import InfillRequest, Span, infill, load_model
    out = {}
    for quant in ("nf4", "int8"):
        model = load_model(sys.argv[1], device="cpu", quantization=quant)
        out[quant] = infill(model, InfillRequest("In the beginning God created", (Span(3, 16),), steps=2)).text
    print(json.dumps(out))
''')


def test_a_quantised_load_and_fill_make_no_request(tiny_llada_dir, counting_hub, tmp_path):
    pytest.importorskip("bitsandbytes")
    env = {**os.environ, "HF_ENDPOINT": counting_hub.url, "HF_TOKEN": "hf_secret", "HF_HOME": str(tmp_path / "hf"),
           "PYTHONPATH": str(ROOT)}
    env.pop("HF_HUB_OFFLINE", None)  # offline must not depend on the user setting it
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tiny_llada_dir)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["nf4"].endswith(" created") and out["int8"].endswith(" created")
    assert counting_hub.requests == []
    assert "kernels-community" not in done.stderr


def test_cpu_packable_shapes():
    # bitsandbytes' AVX512-BF16 NF4 layout: 32-row tiles, whole 64-value blocks per row
    assert quantize.cpu_packable(64, 128) and quantize.cpu_packable(4096, 4096)
    assert not quantize.cpu_packable(32, 32) and not quantize.cpu_packable(48, 64)
