"""The scalarized baseline's data: one DPO policy trained on every aspect's pairs at once."""

from __future__ import annotations

import random
from collections.abc import Sequence

from peo.data.records import PreferencePair


def joint_pairs(pairs_per_aspect: Sequence[list[PreferencePair]], n: int, seed: int) -> list[PreferencePair]:
    """n pairs, an equal share from each aspect in order (the first aspects take the remainder), shuffled: the
    budget of one aspect policy. With two aspects: the first ⌈n/2⌉ help pairs and the first ⌊n/2⌋ harm pairs."""
    k = len(pairs_per_aspect)
    mixed = [pair for i, pairs in enumerate(pairs_per_aspect) for pair in pairs[: n // k + (i < n % k)]]
    random.Random(seed).shuffle(mixed)
    return mixed
