"""The LLM's refinements remembered per worker: the same text is sent to the LLM once."""

from __future__ import annotations

from segserve.lru import Lru
from segserve.prompts.phrases import DetectorPhrases


def cache_key(text: str) -> str:
    """Texts that differ only in spacing refine alike."""
    return " ".join(text.split())


class RefinementCache:
    def __init__(self, max_entries: int):
        self._entries: Lru[str, DetectorPhrases] = Lru(max_entries)

    def get(self, text: str) -> DetectorPhrases | None:
        return self._entries.get(cache_key(text))

    def put(self, text: str, phrases: DetectorPhrases) -> None:
        self._entries.put(cache_key(text), phrases)

    def __len__(self) -> int:
        return len(self._entries)
