"""Entry script of the bundled lacuna-cli."""
import sys

from engine.cli import main

sys.exit(main())
