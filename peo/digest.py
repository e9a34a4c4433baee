"""One fingerprint for a JSON-able value: the sha256 of its canonical JSON.

Stage settings, training inputs, prompt ids and chat turns are keyed by it; one definition keeps every key the
same bytes as the one-liners it replaced (`json.dumps(obj, sort_keys=True, default=str)`, utf-8), so no recorded
hash changes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(obj: Any, *, ensure_ascii: bool = True) -> str:
    """Keys sorted, values JSON cannot hold written as str. ensure_ascii=False keeps non-ASCII text as is (prompt
    ids were made that way)."""
    return json.dumps(obj, sort_keys=True, default=str, ensure_ascii=ensure_ascii)


def digest(obj: Any, *, ensure_ascii: bool = True) -> str:
    """Hex sha256 of `canonical_json(obj)` encoded utf-8 (callers that keep a short key slice it)."""
    return hashlib.sha256(canonical_json(obj, ensure_ascii=ensure_ascii).encode("utf-8")).hexdigest()
