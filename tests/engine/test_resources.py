import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from lacuna.engine import resources

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def fresh_root():
    resources.root.cache_clear()
    yield
    resources.root.cache_clear()


def test_checkout_layout_finds_the_catalog():
    assert resources.path("catalog.json").is_file()
    assert resources.root() == ROOT / "resources"


def test_frozen_bundle_layout_wins(tmp_path, monkeypatch):
    (tmp_path / "resources").mkdir()
    (tmp_path / "resources" / "catalog.json").write_text("{}")
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert resources.root() == tmp_path / "resources"


def test_frozen_bundle_loads_the_starter(tmp_path, monkeypatch):
    starter = ROOT / "resources" / "models" / "starter"
    if not (starter / "model.safetensors").is_file():
        pytest.skip("the starter model is not in this checkout")
    from lacuna.engine import load_model

    (tmp_path / "resources").symlink_to(ROOT / "resources", target_is_directory=True)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    model = load_model("starter", device="cpu")
    assert model.path.startswith(str(tmp_path))


def test_wheel_carries_the_resources(tmp_path, built_wheel):
    """The wheel installs the resources, the starter model included, as lacuna_resources."""
    wheel = built_wheel
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "lacuna_resources/catalog.json" in names
    assert "lacuna/engine/sampler.py" in names and "lacuna/app/main.py" in names and "lacuna/__init__.py" in names
    # Lacuna's own namespace only: no top-level engine or app package to collide with another distribution's
    assert not [n for n in names if n.split("/")[0] in ("engine", "app", "training")]
    for f in (ROOT / "resources" / "models" / "starter").glob("*"):
        assert f"lacuna_resources/models/starter/{f.name}" in names
    # An installed layout (no checkout beside it) finds the data through lacuna_resources.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = textwrap.dedent("""
        from lacuna import engine
        from lacuna.engine import resources
        assert engine.__file__.startswith(%r), engine.__file__
        if (resources.path("models", "starter", "model.safetensors")).is_file():
            engine.load_model("starter", device="cpu")
        print(resources.root())
    """ % str(site))
    run = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}, timeout=300)
    assert run.returncode == 0, run.stderr
    assert Path(run.stdout.strip()) == site / "lacuna_resources"
    shutil.rmtree(site)
