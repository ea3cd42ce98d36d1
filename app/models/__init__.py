"""The Model manager: downloads on worker threads, a table of models, and its window.

    manager = ModelManager.instance()          # once per app; owns the downloads
    dialog = ModelManagerDialog(manager, parent)
    dialog.loadRequested.connect(window.models.load_model)
"""
from .dialog import ModelManagerDialog
from .manager import ModelManager, Outcome
from .table import ModelTableModel

__all__ = ["ModelManager", "ModelManagerDialog", "ModelTableModel", "Outcome"]
