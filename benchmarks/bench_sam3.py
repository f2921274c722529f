"""The sam3 variants of `make bench` (S1–S3), run on the same live server as the others when it deploys sam3.

Each round encodes ONE new image (SAM 3's vision encoder dominates everything else on the CPU) and then
reuses it: the first and second click on that image's id (S2), a new phrase on an image cached earlier (S1's
numerator), 1 and 5 phrases on the cached image in alternating order (S3).

    S1  p50 sam3 text, cached image (a new phrase) / p50 sam3 text, new image                goal <= 0.25
    S2  p50 sam3 first click on a sam3 text answer's image_id / p50 second such click          goal <= 1.2
    S3  p50 sam3 prompt with 5 phrases / with 1 phrase, cached image                            reported
"""

from __future__ import annotations

PHRASES_5 = "a dog. a red car. a tree. a person. a bus"


def sam3_rounds(rounds: int, client, scene, jpeg, b64, size, progress) -> dict[str, list]:
    """`client.call(payload, expect_cache)` → Sample; `scene(size, seed)` a picture; returns samples by variant."""
    samples: dict[str, list] = {}

    def record(name: str, sample) -> None:
        samples.setdefault(name, []).append(sample)

    progress("sam3: priming one image (one SAM 3 encode)")
    cached = {"image_id": client.call({"action": "sam3", "image": b64(jpeg(scene(size, 4000))),
                                       "text_prompt": "a dog"}, "miss").image_id}
    click = {"action": "sam3", "x": 0.68 * size[0], "y": 0.60 * size[1]}
    for index in range(rounds):
        fresh = b64(jpeg(scene(size, 5000 + index)))
        text = {"action": "sam3", "text_prompt": "a dog"}
        answer = client.call({**text, "image": fresh}, "miss")
        record("sam3 text, new image", answer)
        record("sam3 first click on a sam3 text image_id", client.call({**click, "image_id": answer.image_id}, "hit"))
        record("sam3 second click on that image_id", client.call({**click, "image_id": answer.image_id}, "hit"))
        new_phrase = {"action": "sam3", "text_prompt": f"a thing number {index}"}  # never seen: the text encoder runs
        record("sam3 text, cached image, new phrase", client.call({**new_phrase, **cached}, "hit"))
        for phrases in (("a dog", PHRASES_5) if index % 2 == 0 else (PHRASES_5, "a dog")):
            name = "sam3, cached image, 5 phrases" if phrases == PHRASES_5 else "sam3, cached image, 1 phrase"
            record(name, client.call({"action": "sam3", "text_prompt": phrases, **cached}, "hit"))
        progress(f"sam3 round {index + 1}/{rounds}: " + ", ".join(
            f"{name.removeprefix('sam3 ')} {values[-1].ms:.0f} ms" for name, values in samples.items()))
    return samples
