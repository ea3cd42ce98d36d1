"""Scripts that measure the app and the engine on this machine (they never pass or fail):
run each with `python -m benchmarks.<name>` from the checkout; what they print goes to
docs/benchmarks.md with the machine it came from."""
