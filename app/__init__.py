"""Lacuna's desktop application (PySide6). The only package that imports Qt.

Nothing here imports torch or the engine at import time: the engine is
imported on a worker thread after the window is shown (see app.workers).
"""
