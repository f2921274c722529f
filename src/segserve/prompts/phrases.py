"""The LLM's structured output: a short list of detector phrases, validated before GroundingDINO sees it.

The model is asked for `{"phrases": ["jeans", ...]}` under a strict JSON schema (OpenAI's structured
outputs); servers that ignore the schema are held to it here. A phrase is a few plain words; anything
else (prose, markup, an empty list) is malformed output, and the caller falls back to the raw text.
"""

from __future__ import annotations

import json
import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

MAX_PHRASES = 4
MAX_WORDS_PER_PHRASE = 4
_WORD = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")

INSTRUCTIONS = (
    "You turn a user's text (a product title, a caption, a sentence) into the names of the objects it asks "
    "to find in a photo, for an open-vocabulary object detector. Answer with 1 to "
    f"{MAX_PHRASES} short noun phrases of 1 to {MAX_WORDS_PER_PHRASE} plain English words each, lower case, "
    "most important first: the object itself (\"jeans\", \"red dress\"), never brands, sizes, prices, shop "
    "names or colour names of a collection. Example: \"BLANKNYC Wide Leg Jean in Radio Star | REVOLVE\" → "
    "[\"jeans\"]."
)

# OpenAI's `response_format` for structured outputs (strict: the server must keep to the schema).
RESPONSE_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "detector_phrases",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"phrases": {"type": "array", "items": {"type": "string"}}},
            "required": ["phrases"],
            "additionalProperties": False,
        },
    },
}


class MalformedOutput(ValueError):
    """The LLM's answer is not a usable phrase list; the message says why (it never quotes the key)."""


Phrase = Annotated[str, Field(min_length=1, max_length=64)]


class DetectorPhrases(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    phrases: tuple[Phrase, ...] = Field(min_length=1, max_length=MAX_PHRASES)

    @field_validator("phrases")
    @classmethod
    def _plain_words(cls, phrases: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = []
        for phrase in phrases:
            words = phrase.lower().split()
            if not 1 <= len(words) <= MAX_WORDS_PER_PHRASE:
                raise ValueError(f"a phrase has {len(words)} words (1 to {MAX_WORDS_PER_PHRASE} allowed)")
            if not all(_WORD.fullmatch(word) for word in words):
                raise ValueError("a phrase has characters other than letters, digits, ' and -")
            cleaned.append(" ".join(words))
        return tuple(dict.fromkeys(cleaned))  # duplicates dropped, order kept

    @property
    def detector_prompt(self) -> str:
        """GroundingDINO's form: "jeans. denim jacket." (one '.'-terminated phrase each)."""
        return " ".join(phrase + "." for phrase in self.phrases)


def parse_phrases(content: str | None) -> DetectorPhrases:
    """The message content of the LLM's answer → validated phrases, or MalformedOutput."""
    if not content:
        raise MalformedOutput("the LLM's answer was empty")
    try:
        return DetectorPhrases.model_validate(json.loads(content))
    except json.JSONDecodeError:
        raise MalformedOutput("the LLM's answer was not JSON") from None
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "the answer"
        raise MalformedOutput(f"the LLM's answer failed validation ({where}: "
                              f"{first['msg'].removeprefix('Value error, ')})") from None
