"""What one chat request may ask: message size, decoding settings and their ranges, the sweep's defaults.

One definition for every way in: the app's chat (app/callbacks.py) and `peo serve` (peo/serve.py). The decoding
settings' defaults and ranges are read from their one declaration, peo/decoding.py (which the profiles' `sweep`
section and peo.generation.GenerationSettings use too).
"""

from __future__ import annotations

import math

from peo.decoding import Decoding, decoding_defaults, request_limits
from peo.errors import PeoError
from peo.generation import GenerationSettings, recorded_settings
from peo.records import RunMeta

MAX_MESSAGE_CHARS = 2000
MAX_MESSAGE_TOKENS = 512
USER_SETTINGS = ("max_new_tokens", "temperature", "top_p", "seed", "repetition_penalty")  # check_settings' order
# what a user may set, and its range (each setting's `request_range` in peo.decoding); the other decoding settings
# are the sweep's (meta.json "generation")
_RANGES, _DEFAULTS = request_limits(), decoding_defaults()
LIMITS = {name: _RANGES[name] for name in USER_SETTINGS}
WHOLE_NUMBERS = tuple(name for name in USER_SETTINGS if Decoding.model_fields[name].annotation is int)
SWEEP_SETTINGS = (*USER_SETTINGS, "no_repeat_ngram_size")  # what the chat takes from the sweep's decoding
DEFAULT_SETTINGS = {name: _DEFAULTS[name] for name in SWEEP_SETTINGS}


class ChatInputError(PeoError, ValueError):
    """A chat request outside the limits; the message says what to change (the app's AppInputError)."""


def sweep_defaults(run_meta: RunMeta) -> dict:
    """The chat's defaults: the sweep's decoding, answer length included, so a live answer is made as the answers
    its scores are placed among (the reference's test answers) and the front was scored on."""
    generation = run_meta.generation
    return {**DEFAULT_SETTINGS, **{name: generation[name] for name in SWEEP_SETTINGS},
            "penalize_eos": recorded_settings(generation).penalize_eos}


def check_settings(max_new_tokens=None, temperature=None, top_p=None, seed=None, repetition_penalty=None, *,
                   defaults: dict | None = None) -> GenerationSettings:
    """GenerationSettings within safe bounds; ChatInputError naming the bad field and its range.

    A value left None takes `defaults` (the app's: App.default_settings; else DEFAULT_SETTINGS).
    """
    defaults = defaults or DEFAULT_SETTINGS
    raw = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p, "seed": seed,
           "repetition_penalty": repetition_penalty}
    values = {"no_repeat_ngram_size": int(defaults["no_repeat_ngram_size"]),
              "penalize_eos": bool(defaults.get("penalize_eos", False))}
    for name, value in raw.items():
        if value is None:
            value = defaults[name]
        lo, hi = LIMITS[name]
        try:
            x = float(value)
        except (TypeError, ValueError):
            raise ChatInputError(f"{name} must be a number in [{lo}, {hi}], got {value!r}") from None
        if not math.isfinite(x) or x < lo or x > hi:
            raise ChatInputError(f"{name} must be in [{lo}, {hi}], got {value!r}")
        if name in WHOLE_NUMBERS:
            if x != int(x):
                raise ChatInputError(f"{name} must be a whole number in [{lo}, {hi}], got {value!r}")
            x = int(x)
        values[name] = x
    return GenerationSettings(**values)


def check_message(message) -> str:
    if message is None or not isinstance(message, str) or not message.strip():
        raise ChatInputError("Type a message first: an empty message is not sent.")
    message = message.strip()
    try:  # lone UTF-16 surrogates (e.g. a JSON "\ud800" escape) are not text: the tokenizer would fail on them
        message.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ChatInputError(f"Your message contains a character that is not valid text (position {err.start}, "
                             "an unpaired surrogate); remove it and send again.") from None
    if len(message) > MAX_MESSAGE_CHARS:
        raise ChatInputError(f"Your message has {len(message)} characters; the limit is {MAX_MESSAGE_CHARS}. "
                             "Shorten it and send again.")
    return message
