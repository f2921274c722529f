"""Text prompt → detector phrases with an OpenAI-compatible LLM, falling back to the raw text, never failing.

`LlmPromptRefiner` asks the chat completions API for structured output (phrases.py), with a short
timeout and the client's own retry (one by default), and remembers each answer (cache.py). Whatever
goes wrong — timeout, unreachable server, refused key, server error, malformed output — the raw text is
used and the result carries a warning saying why (refinement.py).

The API key lives only inside the openai client: no message, warning or log line is built from the
server's error text (OpenAI's 401 body quotes part of the key), and tracebacks are redacted.
"""

from __future__ import annotations

import logging
import traceback

import openai

from segserve.models.runtime import StageTimer
from segserve.prompts.cache import RefinementCache
from segserve.prompts.phrases import INSTRUCTIONS, RESPONSE_FORMAT, DetectorPhrases, MalformedOutput, parse_phrases
from segserve.contract.responses import INTERNAL_ERROR, KEY_REFUSED, MALFORMED_OUTPUT, SERVER_ERROR, TIMEOUT, UNREACHABLE
from segserve.prompts.refinement import USED_AS_SENT, PromptCheck, PromptRefinement, RefinementWarning

log = logging.getLogger(__name__)


class LlmPromptRefiner:
    def __init__(self, client: openai.OpenAI, model: str, cache: RefinementCache,
                 check_prompt: PromptCheck = lambda prompt: None, temperature: float | None = 0.0):
        self.client = client  # its timeout and max_retries: ModelSettings.prompt_refiner
        self.model = model
        self.cache = cache
        self.check_prompt = check_prompt
        self.temperature = temperature  # None: not sent (models that accept only their default)

    def refine(self, text_prompt: str, timer: StageTimer) -> PromptRefinement:
        phrases = self.cache.get(text_prompt)
        if phrases is None:
            try:
                with timer.stage("prompt_refinement"):
                    phrases = self._ask(text_prompt)
            except Exception as exc:  # nothing here may fail a segmentation
                warning = self._warning(exc)
                log.warning("prompt refinement fell back to the raw text: %s (%s)", warning.message,
                            _describe(exc))
                if warning.code == INTERNAL_ERROR:
                    log.warning("%s", self._redacted("".join(traceback.format_exception(exc))))
                return PromptRefinement(text_prompt, None, (warning,))
            self.cache.put(text_prompt, phrases)
        return PromptRefinement(text_prompt, phrases.detector_prompt)

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
    def _warning(exc: Exception) -> RefinementWarning:
        if isinstance(exc, openai.APITimeoutError):
            return RefinementWarning(TIMEOUT, f"the LLM did not answer in time; {USED_AS_SENT}")
        if isinstance(exc, openai.APIConnectionError):
            return RefinementWarning(UNREACHABLE, f"the LLM server could not be reached; {USED_AS_SENT}")
        if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
            return RefinementWarning(KEY_REFUSED, f"the LLM server refused the API key ({exc.status_code}); "
                                                  f"{USED_AS_SENT}")
        if isinstance(exc, openai.APIStatusError):
            return RefinementWarning(SERVER_ERROR, f"the LLM server answered {exc.status_code}; {USED_AS_SENT}")
        if isinstance(exc, (MalformedOutput, openai.APIResponseValidationError)):
            reason = str(exc) if isinstance(exc, MalformedOutput) else "the LLM's answer was not a chat completion"
            return RefinementWarning(MALFORMED_OUTPUT, f"{reason}; {USED_AS_SENT}")
        return RefinementWarning(INTERNAL_ERROR, f"prompt refinement failed; {USED_AS_SENT}")

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
