"""The one base of every error peo raises on purpose.

Its message names what to fix (the file, line, field or flag and what was expected). Every command catches it
and prints it as one line (`error: …`) with exit status 2; anything else is a bug and keeps its traceback.
Each subclass also derives from the builtin it stands for (ValueError, RuntimeError), so callers that catch
those keep working.
"""

from __future__ import annotations


class PeoError(Exception):
    """An error with a message for the user, not a bug."""


class AssetsError(PeoError, RuntimeError):
    """The assets folder is missing a part or was not produced by precompute (peo.assets, peo.records)."""
