"""The SAM2 embedding cache: bounded in bytes, least recently used out first, safe between threads; the null cache."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from segserve.models.embedding_cache import (
    CachedImage, LruEmbeddingCache, NullEmbeddingCache, embedding_cache,
)
from segserve.models.sam2_pipeline import ImageEmbedding

KIB = 1024


def entry(kib: int, height: int = 2, width: int = 2) -> CachedImage:
    """An entry of exactly `kib` KiB: an fp32 embedding of kib KiB minus its pixels' 12 bytes."""
    pixels = np.zeros((height, width, 3), np.uint8)
    embed = torch.zeros((kib * KIB - pixels.nbytes) // 4, dtype=torch.float32)
    assert (kib * KIB - pixels.nbytes) % 4 == 0
    return CachedImage(ImageEmbedding(embed, (), (height, width)), pixels)


def test_an_entry_counts_its_embedding_on_the_device_and_its_pixels():
    pixels = np.zeros((48, 64, 3), np.uint8)
    embedding = ImageEmbedding(torch.zeros(1, 8, 4, 4), (torch.zeros(1, 2, 16, 16, dtype=torch.bfloat16),), (48, 64))
    cached = CachedImage(embedding, pixels)
    assert cached.nbytes == 8 * 4 * 4 * 4 + 2 * 16 * 16 * 2 + 48 * 64 * 3
    assert (cached.height, cached.width) == (48, 64)


def test_the_bytes_held_never_pass_the_bound():
    cache = LruEmbeddingCache(10 * KIB)
    for number in range(7):
        cache.put(f"image-{number}", entry(3))
        assert cache.stats().bytes <= 10 * KIB
    stats = cache.stats()
    assert (stats.entries, stats.bytes, stats.evictions) == (3, 9 * KIB, 4)
    assert [cache.get(f"image-{n}") is not None for n in range(7)] == [False] * 4 + [True] * 3


def test_the_least_recently_used_goes_first_and_a_hit_makes_an_entry_recent():
    cache = LruEmbeddingCache(3 * KIB)
    for name in "abc":
        cache.put(name, entry(1))
    assert cache.get("a") is not None  # now b is the oldest
    cache.put("d", entry(1))
    assert cache.get("b") is None
    assert all(cache.get(name) is not None for name in "acd")
    cache.put("e", entry(2))  # needs two slots: the two least recent (a, then c) go
    assert [name for name in "acde" if cache.get(name) is not None] == ["d", "e"]


def test_hits_misses_and_evictions_are_counted():
    cache = LruEmbeddingCache(2 * KIB)
    assert cache.get("a") is None
    cache.put("a", entry(1))
    cache.put("b", entry(1))
    assert cache.get("a") is not None and cache.get("a") is not None
    cache.put("c", entry(1))  # evicts b
    assert cache.get("b") is None
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.evictions, stats.entries, stats.capacity_bytes) == (2, 2, 1, 2, 2 * KIB)


def test_putting_the_same_id_again_replaces_it_without_counting_twice():
    cache = LruEmbeddingCache(4 * KIB)
    cache.put("a", entry(1))
    cache.put("a", entry(2))
    stats = cache.stats()
    assert (stats.entries, stats.bytes, stats.evictions) == (1, 2 * KIB, 0)
    assert cache.get("a").nbytes == 2 * KIB


def test_an_entry_larger_than_the_whole_cache_is_not_kept_and_evicts_nothing():
    cache = LruEmbeddingCache(4 * KIB)
    cache.put("small", entry(1))
    cache.put("huge", entry(5))
    assert cache.get("huge") is None and cache.get("small") is not None
    assert cache.stats().evictions == 0


def test_threads_sharing_the_cache_keep_its_books_exact():
    cache = LruEmbeddingCache(20 * KIB)
    entries = {f"image-{n}": entry(1 + n % 3) for n in range(40)}
    gets_per_thread, threads = 400, 8
    errors = []

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            for _ in range(gets_per_thread):
                name = f"image-{rng.integers(40)}"
                found = cache.get(name)
                if found is None:
                    cache.put(name, entries[name])
                elif found is not entries[name]:
                    errors.append(name)
        except Exception as exc:  # noqa: BLE001 - any exception in a thread is the failure reported below
            errors.append(repr(exc))

    workers = [threading.Thread(target=work, args=(seed,)) for seed in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    stats = cache.stats()
    assert errors == []
    assert stats.hits + stats.misses == gets_per_thread * threads
    held = [name for name in entries if cache.get(name) is not None]  # lookups evict nothing
    assert stats.entries == len(held) and stats.bytes == sum(entries[name].nbytes for name in held)
    assert stats.bytes <= 20 * KIB and stats.evictions > 0


def test_the_null_cache_keeps_nothing_and_counts_its_misses():
    cache = NullEmbeddingCache()
    cache.put("a", entry(1))
    assert cache.get("a") is None and cache.get("b") is None
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.entries, stats.bytes, stats.capacity_bytes) == (0, 2, 0, 0, 0)


def test_a_size_of_zero_means_no_cache():
    assert isinstance(embedding_cache(0), NullEmbeddingCache)
    assert embedding_cache(5 * KIB).stats().capacity_bytes == 5 * KIB
    with pytest.raises(ValueError, match="NullEmbeddingCache"):
        LruEmbeddingCache(0)
