"""The mock Hub of tests/engine/hub, for the Model manager window."""
from tests.engine.hub.conftest import REPO, fast_options, hub, hub_model_files, tiny_repo  # noqa: F401
