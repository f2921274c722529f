"""The SAM2 embedding cache: an image's encoding kept for the next click, keyed by its image id.

The image id is the content hash of the decoded pixels (media/image_loading.py), so the same picture sent
again, in any form, finds its entry. An entry holds the whole encoding (SAM2's `ImageEmbedding`, SAM 3's
`Sam3Encoding`) on the model's device and the
RGB pixels (host memory): the pixels let a request by `image_id` render images and let langsam detect on an
image it was not sent. Both count towards the byte bound.

`LruEmbeddingCache` evicts the least recently used entries to stay within its bytes; `NullEmbeddingCache`
(size 0) keeps nothing. Both are safe to share between threads. Counters are plain numbers: the TorchServe
handler publishes them as Prometheus metrics (this package never imports TorchServe).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

import numpy as np


class Encoding(Protocol):
    """What the cache needs of a model's image encoding."""

    image_size: tuple[int, int]  # (height, width)

    @property
    def nbytes(self) -> int: ...


@dataclass(frozen=True, eq=False)
class CachedImage:
    embedding: Encoding
    pixels: np.ndarray  # (H, W, 3) uint8 RGB, as decoded

    @property
    def nbytes(self) -> int:
        return self.embedding.nbytes + int(self.pixels.nbytes)

    @property
    def height(self) -> int:
        return self.embedding.image_size[0]

    @property
    def width(self) -> int:
        return self.embedding.image_size[1]


@dataclass(frozen=True)
class CacheStats:
    hits: int
    misses: int
    evictions: int
    entries: int
    bytes: int
    capacity_bytes: int


class EmbeddingCache(ABC):
    @abstractmethod
    def get(self, image_id: str) -> CachedImage | None:
        """The entry, now the most recently used; None (a miss) when absent."""

    @abstractmethod
    def put(self, image_id: str, entry: CachedImage) -> None:
        """Keep `entry`, evicting older ones as needed; an entry larger than the whole cache is not kept."""

    @abstractmethod
    def stats(self) -> CacheStats: ...


class NullEmbeddingCache(EmbeddingCache):
    """Caching off (`embedding_cache_bytes: 0`): every lookup misses and nothing is kept."""

    def __init__(self) -> None:
        self._misses = 0
        self._lock = threading.Lock()

    def get(self, image_id: str) -> CachedImage | None:
        with self._lock:
            self._misses += 1
        return None

    def put(self, image_id: str, entry: CachedImage) -> None:
        pass

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(0, self._misses, 0, 0, 0, 0)


class LruEmbeddingCache(EmbeddingCache):
    def __init__(self, capacity_bytes: int):
        if capacity_bytes <= 0:
            raise ValueError("capacity_bytes must be positive (use NullEmbeddingCache for no cache)")
        self.capacity_bytes = capacity_bytes
        self._entries: OrderedDict[str, CachedImage] = OrderedDict()  # least recently used first
        self._bytes = 0
        self._hits = self._misses = self._evictions = 0
        self._lock = threading.Lock()

    def get(self, image_id: str) -> CachedImage | None:
        with self._lock:
            entry = self._entries.get(image_id)
            if entry is None:
                self._misses += 1
                return None
            self._entries.move_to_end(image_id)
            self._hits += 1
            return entry

    def put(self, image_id: str, entry: CachedImage) -> None:
        size = entry.nbytes
        with self._lock:
            old = self._entries.pop(image_id, None)
            if old is not None:
                self._bytes -= old.nbytes
            if size > self.capacity_bytes:
                return
            while self._bytes + size > self.capacity_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.nbytes
                self._evictions += 1
            self._entries[image_id] = entry
            self._bytes += size

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(self._hits, self._misses, self._evictions, len(self._entries), self._bytes,
                              self.capacity_bytes)


def embedding_cache(capacity_bytes: int) -> EmbeddingCache:
    """The cache a model-config asks for: an LRU of that many bytes, or none for 0."""
    return LruEmbeddingCache(capacity_bytes) if capacity_bytes > 0 else NullEmbeddingCache()
