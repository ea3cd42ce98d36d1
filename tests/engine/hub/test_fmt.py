"""Human-readable progress: what the table and the CLI show."""
from lacuna.engine.hub.download import FileProgress, PullProgress
from lacuna.engine.hub.fmt import human_bytes, human_count, human_eta, human_rate


def test_describe_downloading_paused_and_done():
    p = PullProgress("a/b", "main", "c" * 40, "downloading", done=42, total=100, rate=12e6, eta=180,
                     files=(FileProgress("model.safetensors", 100, 42, "downloading", 12e6, 180),))
    assert p.describe() == "downloading 42% at 12.0 MB/s, ETA 3 min"
    assert PullProgress("a/b", "main", None, "paused", 50, 100).describe() == "paused at 50%"
    assert PullProgress("a/b", "main", None, "installed", 1, 1, message="ok").describe() == "ok"


def test_units():
    assert human_bytes(999) == "999 B" and human_bytes(16_030_000_000) == "16.0 GB"
    assert human_rate(0) == "?" and human_rate(1_500_000) == "1.5 MB/s"
    assert human_eta(None) == "?" and human_eta(42) == "42 s" and human_eta(3 * 3600 + 120) == "3 h 02 min"
    assert human_count(8_015_000_000) == "8.0B" and human_count(149_000_000) == "149M"
