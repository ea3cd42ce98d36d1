"""A download killed with SIGKILL resumes in the next process, without fetching finished files again."""
from __future__ import annotations

import hashlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lacuna.engine.hub import cache, local_snapshot, records
from lacuna.engine.hub.download import pull

from .conftest import REPO, fast_options

WEIGHTS = "model.safetensors"
ROOT = Path(__file__).resolve().parents[3]


def _read_until(proc: subprocess.Popen, predicate, timeout: float = 60.0) -> dict:
    """Read JSON lines from the child until one satisfies ``predicate`` (an event, not a sleep)."""
    deadline = time.monotonic() + timeout
    buffer = b""
    fd = proc.stdout.fileno()
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], deadline - time.monotonic())
        if not ready:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            value = json.loads(line)
            if predicate(value):
                return value
    raise AssertionError(f"the child never reported the marker; stderr: {proc.stderr.read().decode()[-2000:]}")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
def test_sigkill_mid_download_then_resume(tiny_repo, hub, hub_model_files):
    size = len(hub_model_files[WEIGHTS])
    cut = size // 2
    hold = hub.fault(WEIGHTS, hold_after=cut)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen([sys.executable, "-m", "tests.engine.hub._pull_child", REPO], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _read_until(proc, lambda v: v.get("path") == WEIGHTS and v.get("done") == cut)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    hold.release.set()

    sha = hashlib.sha256(hub_model_files[WEIGHTS]).hexdigest()
    partial = cache.partial_path(REPO, sha)
    assert partial.stat().st_size == cut, "the partial file survives the kill"
    assert records.get_install(REPO) is None and local_snapshot(REPO) is None, "never half installed"
    finished = [p for p in hub_model_files if p != WEIGHTS and hub.requests_for(p)]
    assert finished, "the small files were done before the weights"

    hub.clear_log()
    record = pull(REPO, options=fast_options())
    assert [r.range for r in hub.requests_for(WEIGHTS)] == [f"bytes={cut}-"]
    for path in finished:
        assert hub.requests_for(path) == [], f"{path} was downloaded again"
    assert record["verified"] and local_snapshot(REPO) is not None
    assert (local_snapshot(REPO) / WEIGHTS).read_bytes() == hub_model_files[WEIGHTS]
