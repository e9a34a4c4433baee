"""Chat messages → the prompt the model sees, as text and as token ids: one definition for every caller.

Generation, the evaluators' features, the data stage's length filter and the app's context limit all encode a
prompt the same way: the tokenizer's chat template with the assistant's generation prompt, rendered to text,
then tokenized WITHOUT adding special tokens (the template already writes any BOS/turn tokens, so adding them
again would double them). Torch-free, so the data stage can use it without loading a model stack.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Messages = Sequence[Mapping[str, str]]


def chat_text(tokenizer: Any, messages: Messages, add_generation_prompt: bool = True) -> str:
    """The prompt as text: the chat template applied to `messages` (ending in the assistant's turn header)."""
    return tokenizer.apply_chat_template(list(messages), add_generation_prompt=add_generation_prompt, tokenize=False)


def token_ids(tokenizer: Any, text: str) -> list[int]:
    """`text` as token ids, no special tokens added (a tokenizer may return a mapping or the bare id list)."""
    encoded = tokenizer(text, add_special_tokens=False)
    ids = encoded["input_ids"] if isinstance(encoded, Mapping) or hasattr(encoded, "keys") else encoded
    return list(ids)


def encode_chat(tokenizer: Any, messages: Messages, add_generation_prompt: bool = True) -> list[int]:
    """The prompt's token ids: `token_ids(chat_text(...))`, exactly what `generate` is fed for these messages."""
    return token_ids(tokenizer, chat_text(tokenizer, messages, add_generation_prompt))
