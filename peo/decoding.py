"""The decoding settings, declared once: defaults, bounds and what each one does.

The profile's `sweep` section (peo.config.SweepConfig) takes the fields a sweep sets (`SweepDecoding`);
peo.generation.GenerationSettings is the full `Decoding` plus `penalize_eos`; the chat's limits, which the app
(app/callbacks.py) and `peo serve` (peo/serve.py) check a request against, are each field's `request_range`
(peo.chat_limits.LIMITS reads them from here).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

REQUEST_RANGE = "request_range"  # a field's json_schema_extra key: the range a chat user (app or peo serve) may ask


class SweepDecoding(BaseModel):
    """The decoding settings a profile's `sweep` section sets (the sweep decodes greedily, seeded by `seed`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    max_new_tokens: int = Field(64, ge=1, description="tokens generated at most per answer",
                                json_schema_extra={REQUEST_RANGE: (1, 512)})
    repetition_penalty: float = Field(
        1.0, gt=0, description="> 1 divides the logits of tokens already in prompt or answer (CTRL's rule)",
        json_schema_extra={REQUEST_RANGE: (1.0, 2.0)})
    no_repeat_ngram_size: int = Field(0, ge=0, description="> 0: no n-gram of this size occurs twice in a row's text")


class Decoding(SweepDecoding):
    """Every decoding setting of one answer: the sweep's and the sampling ones a chat user may set."""

    temperature: float = Field(0.0, ge=0, description="0: greedy, deterministic; > 0: sampled at this temperature",
                               json_schema_extra={REQUEST_RANGE: (0.0, 1.5)})
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling: the smallest token set of this probability",
                         json_schema_extra={REQUEST_RANGE: (0.1, 1.0)})
    seed: int = Field(0, description="a sampled row i draws from its own generator seeded seed + i",
                      json_schema_extra={REQUEST_RANGE: (0, 2**31 - 1)})


def request_limits() -> dict[str, tuple[Any, Any]]:
    """name → (lowest, highest) a chat request may set, for the settings a user may set, in declaration order."""
    out = {}
    for name, info in Decoding.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if REQUEST_RANGE in extra:
            out[name] = tuple(extra[REQUEST_RANGE])
    return out


def decoding_defaults() -> dict[str, Any]:
    """Every decoding setting's default."""
    return {name: info.default for name, info in Decoding.model_fields.items()}
