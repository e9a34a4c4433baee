"""The scalarized baseline's data: one DPO policy trained on both aspects' pairs at once."""

from __future__ import annotations

import random

from peo.data.records import PreferencePair


def joint_pairs(help_pairs: list[PreferencePair], harm_pairs: list[PreferencePair], n: int,
                seed: int) -> list[PreferencePair]:
    """n pairs, half from each aspect, shuffled: the budget of one aspect policy."""
    mixed = help_pairs[: (n + 1) // 2] + harm_pairs[: n // 2]
    random.Random(seed).shuffle(mixed)
    return mixed
