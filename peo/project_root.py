"""Where default folders live: the checkout when the code runs from one, else the current directory.

An installed package (`pip install .`) sits in site-packages, where neither assets nor a cache belong: there
the assets, votes and run folders default to the working directory, and the model cache to the user's cache.
"""

from __future__ import annotations

import os
from pathlib import Path

CODE_ROOT = Path(__file__).resolve().parents[1]
IN_CHECKOUT = (CODE_ROOT / "pyproject.toml").is_file()  # the wheel ships no pyproject.toml beside peo/


def project_root() -> Path:
    """The folder relative paths (assets/, runs/, data/votes/) are resolved against."""
    return CODE_ROOT if IN_CHECKOUT else Path.cwd()


def default_cache() -> Path:
    """The converted base model and other downloads: `.cache/` in a checkout, else ~/.cache/peo."""
    if IN_CHECKOUT:
        return CODE_ROOT / ".cache"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "peo"
