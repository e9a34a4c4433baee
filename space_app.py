"""The Hugging Face Space's `app_file`: `python space_app.py` runs the app as `python -m app` does.

A Space runs its app_file as a script; Python puts the script's own folder (the repository root) on sys.path,
so the `app`, `peo` packages import from the checkout without installing the project or editing sys.path.
"""

import sys

from app.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
