"""Entry script of the bundled editor (PyInstaller needs a file, not a module path)."""
import sys

from app.main import main

sys.exit(main())
