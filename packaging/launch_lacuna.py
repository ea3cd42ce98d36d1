"""Entry script of the bundled editor (PyInstaller needs a file, not a module path)."""
import sys

from lacuna.app.main import main

sys.exit(main())
