"""The one record type every loader produces."""

from __future__ import annotations

from dataclasses import dataclass

from peo.digest import digest


@dataclass(frozen=True)
class Message:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True)
class PreferencePair:
    """One preference judgement: for `prompt` (chat messages), `chosen` beats `rejected` on `aspect`."""

    prompt: tuple[Message, ...]
    chosen: str
    rejected: str
    aspect: str  # an aspect's name (peo.aspects): the run's aspect these pairs teach
    source: str
    prompt_id: str

    def prompt_messages(self) -> list[dict[str, str]]:
        return [{"role": m.role, "content": m.content} for m in self.prompt]


def prompt_id_of(prompt: tuple[Message, ...]) -> str:
    """Stable id of a prompt: splits hash it, so the same prompt always lands in the same split."""
    return digest([[m.role, m.content] for m in prompt], ensure_ascii=False)[:16]
