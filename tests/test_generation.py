"""peo.generation.new_token_counts: how many tokens each row generated, exactly, from the padded output."""

from __future__ import annotations

import torch

from peo.generation import new_token_counts

EOS, PAD = 2, 0


def test_counts_stop_at_the_first_eos_or_pad():
    new_tokens = torch.tensor([
        [5, 6, EOS, PAD, PAD],  # stopped by itself after 2 tokens; transformers pads the rest
        [5, 6, 7, 8, 9],        # reached the limit: cut
        [EOS, PAD, PAD, PAD, PAD],  # an empty answer
        [5, PAD, PAD, PAD, PAD],  # pad == eos in some tokenizers: the first pad ends it too
        [5, 6, 7, 8, EOS],      # EOS as the last allowed token: finished, not cut
    ])
    assert new_token_counts(new_tokens, {EOS, PAD}) == [2, 5, 0, 1, 4]
    assert new_token_counts(new_tokens[:, :0], {EOS, PAD}) == [0] * 5  # nothing generated
