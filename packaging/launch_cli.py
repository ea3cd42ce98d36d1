"""Entry script of the bundled lacuna-cli."""
import sys

from lacuna.engine.cli import main

sys.exit(main())
