"""Text prompt → detector phrases with an OpenAI-compatible LLM, falling back to the raw text, never failing.

`LlmPromptRefiner` asks the chat completions API for structured output (phrases.py), with a short
timeout and the client's own retry (one by default), and remembers each answer (cache.py). Whatever
goes wrong — timeout, unreachable server, refused key, server error, malformed output — the raw text is
used and the result carries a warning saying why (refinement.py). After an outage the LLM is not asked
for a cool-down (cooldown.py): those requests fall back at once, with their own warning.

The API key lives only inside the openai client: no message, warning or log line is built from the
server's error text (OpenAI's 401 body quotes part of the key), and tracebacks are redacted.
"""

from __future__ import annotations

import logging
import traceback

import openai

from segserve.models.runtime import StageTimer
from segserve.prompts.cache import RefinementCache
from segserve.prompts.cooldown import Cooldown
from segserve.prompts.phrases import INSTRUCTIONS, RESPONSE_FORMAT, DetectorPhrases, MalformedOutput, parse_phrases
from segserve.contract.responses import (COOLING_DOWN, INTERNAL_ERROR, KEY_REFUSED, MALFORMED_OUTPUT, SERVER_ERROR,
                                        TIMEOUT, UNREACHABLE)
from segserve.prompts.refinement import USED_AS_SENT, PromptCheck, PromptRefinement, RefinementWarning

log = logging.getLogger(__name__)

# Failures that mean the LLM cannot be used now: they open the cool-down. Malformed output does not (it answered).
OUTAGES = (TIMEOUT, UNREACHABLE, KEY_REFUSED, SERVER_ERROR)


class LlmPromptRefiner:
    def __init__(self, client: openai.OpenAI, model: str, cache: RefinementCache,
                 check_prompt: PromptCheck = lambda prompt: None, temperature: float | None = 0.0,
                 cooldown: Cooldown | None = None):
        self.client = client  # its timeout and max_retries: ModelSettings.prompt_refiner
        self.model = model
        self.cache = cache
        self.check_prompt = check_prompt
        self.temperature = temperature  # None: not sent (models that accept only their default)
        self.cooldown = cooldown or Cooldown(0)  # Cooldown(0): the LLM is asked every time

    def refine(self, text_prompt: str, timer: StageTimer) -> PromptRefinement:
        phrases = self.cache.get(text_prompt)
        if phrases is None:
            if not self.cooldown.allow():
                log.info("prompt refinement skipped: the LLM is cooling down")
                return PromptRefinement(text_prompt, None, (RefinementWarning(COOLING_DOWN, (
                    f"the LLM was not asked: it is cooling down after a failure ({self.cooldown.reason}); "
                    f"{USED_AS_SENT}")),))
            try:
                with timer.stage("prompt_refinement"):
                    phrases = self._ask(text_prompt)
            except Exception as exc:  # nothing here may fail a segmentation
                code, reason = self._failure(exc)
                self._record(code, reason)
                log.warning("prompt refinement fell back to the raw text: %s (%s)", reason, _describe(exc))
                if code == INTERNAL_ERROR:
                    log.warning("%s", self._redacted("".join(traceback.format_exception(exc))))
                return PromptRefinement(text_prompt, None, (RefinementWarning(code, f"{reason}; {USED_AS_SENT}"),))
            self._record(None, "")
            self.cache.put(text_prompt, phrases)
        return PromptRefinement(text_prompt, phrases.detector_prompt)

    def _record(self, code: str | None, reason: str) -> None:
        """Every outcome of an LLM call reaches the cool-down: an outage opens it, anything else closes it."""
        if code in OUTAGES:
            self.cooldown.failed(reason)
            if self.cooldown.seconds:
                log.warning("prompt refinement: the LLM is not asked for %g s (%s)", self.cooldown.seconds, reason)
        elif self.cooldown.succeeded():
            log.info("prompt refinement: the LLM answered again, the cool-down is over")

    def _ask(self, text_prompt: str) -> DetectorPhrases:
        options = {} if self.temperature is None else {"temperature": self.temperature}
        completion = self.client.chat.completions.create(
            model=self.model,
            messages=[{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": text_prompt}],
            response_format=RESPONSE_FORMAT,
            max_completion_tokens=200,
            **options,
        )
        choices = getattr(completion, "choices", None)  # a 200 that is not JSON comes back as its text
        if not choices:
            raise MalformedOutput("the LLM's answer was not a chat completion with a choice")
        choice = choices[0]
        if getattr(choice.message, "refusal", None):
            raise MalformedOutput("the LLM refused to answer")
        if choice.finish_reason == "length":
            raise MalformedOutput("the LLM's answer was cut off")
        phrases = parse_phrases(choice.message.content)
        problem = self.check_prompt(phrases.detector_prompt)
        if problem:
            raise MalformedOutput(f"the LLM's phrases do not fit the detector ({problem})")
        return phrases

    @staticmethod
    def _failure(exc: Exception) -> tuple[str, str]:
        """The warning code and the reason, for people, of a failed refinement."""
        if isinstance(exc, openai.APITimeoutError):
            return TIMEOUT, "the LLM did not answer in time"
        if isinstance(exc, openai.APIConnectionError):
            return UNREACHABLE, "the LLM server could not be reached"
        if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
            return KEY_REFUSED, f"the LLM server refused the API key ({exc.status_code})"
        if isinstance(exc, openai.APIStatusError):
            return SERVER_ERROR, f"the LLM server answered {exc.status_code}"
        if isinstance(exc, (MalformedOutput, openai.APIResponseValidationError)):
            return MALFORMED_OUTPUT, (str(exc) if isinstance(exc, MalformedOutput)
                                      else "the LLM's answer was not a chat completion")
        return INTERNAL_ERROR, "prompt refinement failed"

    def _redacted(self, text: str) -> str:
        key = getattr(self.client, "api_key", None)
        return text.replace(key, "[redacted]") if isinstance(key, str) and key else text


def _describe(exc: Exception) -> str:
    """For the log: the exception's type, and the server's status and request id if any (never its text)."""
    parts = [type(exc).__name__]
    if isinstance(exc, openai.APIStatusError):
        parts.append(f"status {exc.status_code}")
        if exc.request_id:
            parts.append(f"request id {exc.request_id}")
    return ", ".join(parts)
