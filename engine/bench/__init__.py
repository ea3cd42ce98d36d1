"""Benchmarks: each measures and reports, none passes or fails on time.

``lacuna-cli bench`` runs them (engine/bench/cli.py); each module also runs with
``python -m``: overhead, speed, fit, native, restore."""
