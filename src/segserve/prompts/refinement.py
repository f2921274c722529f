"""What a prompt refinement gives the detector: the raw or refined prompt, and warnings when it fell back.

No openai import here (it takes seconds): services and the sam2 worker import this module; only the
langsam worker with a configured LLM loads refiner.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from segserve.contract.responses import NOT_CONFIGURED
from segserve.models.runtime import StageTimer

USED_AS_SENT = "the text prompt was used as sent"


@dataclass(frozen=True)
class RefinementWarning:
    code: str  # one of WARNING_CODES
    message: str  # for people; never quotes the key or the LLM server's error text

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class PromptRefinement:
    text_prompt: str  # as the client sent it
    refined_prompt: str | None = None  # the LLM's phrases as GroundingDINO's prompt; None: not refined
    warnings: tuple[RefinementWarning, ...] = ()

    @property
    def detector_prompt(self) -> str:
        return self.refined_prompt if self.refined_prompt is not None else self.text_prompt


class PromptRefiner(Protocol):
    def refine(self, text_prompt: str, timer: StageTimer) -> PromptRefinement: ...


class NullRefiner:
    """No LLM on this endpoint: every refinement is the raw text with a warning saying why."""

    def __init__(self, reason: str = "no LLM is configured on this endpoint"):
        self.reason = reason

    def refine(self, text_prompt: str, timer: StageTimer) -> PromptRefinement:
        warning = RefinementWarning(NOT_CONFIGURED, f"{self.reason}; {USED_AS_SENT}")
        return PromptRefinement(text_prompt, None, (warning,))


# Why the detector cannot take a prompt as it is (too many tokens, unknown words), or None when it can.
PromptCheck = Callable[[str], str | None]
