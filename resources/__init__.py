"""Lacuna's data files (catalog, starter model, icons); installed as ``lacuna_resources``.

Code never imports this package by name: engine.resources finds the folder in a
checkout, an installed wheel and a frozen bundle alike.
"""
