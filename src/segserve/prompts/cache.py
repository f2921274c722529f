"""A bounded, thread-safe LRU of refinements: the same text is sent to the LLM once per worker."""

from __future__ import annotations

import threading
from collections import OrderedDict

from segserve.prompts.phrases import DetectorPhrases


def cache_key(text: str) -> str:
    """Texts that differ only in spacing refine alike."""
    return " ".join(text.split())


class RefinementCache:
    def __init__(self, max_entries: int):
        if max_entries < 0:
            raise ValueError("max_entries must be >= 0")
        self.max_entries = max_entries  # 0: nothing is kept
        self._entries: OrderedDict[str, DetectorPhrases] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, text: str) -> DetectorPhrases | None:
        key = cache_key(text)
        with self._lock:
            phrases = self._entries.get(key)
            if phrases is not None:
                self._entries.move_to_end(key)
            return phrases

    def put(self, text: str, phrases: DetectorPhrases) -> None:
        if self.max_entries == 0:
            return
        key = cache_key(text)
        with self._lock:
            self._entries[key] = phrases
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
