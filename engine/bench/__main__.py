"""``python -m lacuna.engine.bench ...``: the same as ``lacuna-cli bench ...``."""
import sys

from ..cli import main

sys.exit(main(["bench", *sys.argv[1:]]))
