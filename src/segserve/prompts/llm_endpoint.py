"""Where the LLM is and which key it takes, read once when a worker starts.

The standard `OPENAI_API_KEY` and `OPENAI_BASE_URL` variables, as the openai client reads them, so any
OpenAI-compatible server works. On SageMaker the key is not put in the Model's environment: the Model
carries `SEGSERVE_OPENAI_SECRET_ID` and the worker reads that secret with its execution role. A key that
cannot be had is not an error: refinement then falls back to the raw text with a warning.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

SECRET_ID_ENV = "SEGSERVE_OPENAI_SECRET_ID"
API_KEY_ENV = "OPENAI_API_KEY"
BASE_URL_ENV = "OPENAI_BASE_URL"
# Key names accepted when the secret is a JSON object (the console's key/value form) rather than the bare key.
_SECRET_KEY_NAMES = (API_KEY_ENV, "api_key")


@dataclass(frozen=True)
class LlmEndpoint:
    api_key: str | None = field(default=None, repr=False)  # never printed
    base_url: str | None = None  # None: the openai client's default (api.openai.com)
    problem: str | None = None  # why there is no key, for the fallback warning


def llm_endpoint(environ: Mapping[str, str], secrets_client=None) -> LlmEndpoint:
    """The key from Secrets Manager when `SEGSERVE_OPENAI_SECRET_ID` is set, else from `OPENAI_API_KEY`.

    `secrets_client`: a boto3 secretsmanager client (made here with the default credentials when None)."""
    base_url = environ.get(BASE_URL_ENV) or None
    secret_id = environ.get(SECRET_ID_ENV)
    if secret_id:
        key, problem = _key_from_secret(secret_id, secrets_client)
        return LlmEndpoint(key, base_url, problem)
    key = environ.get(API_KEY_ENV) or None
    problem = None if key else f"no LLM API key is configured on this endpoint ({API_KEY_ENV} or {SECRET_ID_ENV})"
    return LlmEndpoint(key, base_url, problem)


def _key_from_secret(secret_id: str, client) -> tuple[str | None, str | None]:
    unreadable = f"the LLM API key could not be read from Secrets Manager secret {secret_id!r}"
    try:
        from botocore.exceptions import BotoCoreError, ClientError

        if client is None:
            import boto3

            client = boto3.client("secretsmanager")
        with _botocore_debug_off():
            value = client.get_secret_value(SecretId=secret_id).get("SecretString")
    except ImportError:
        log.warning("%s: boto3 is not installed", unreadable)
        return None, unreadable
    except ClientError as exc:  # the code only: messages can quote request details
        log.warning("%s: %s", unreadable, exc.response.get("Error", {}).get("Code", "ClientError"))
        return None, unreadable
    except BotoCoreError as exc:
        log.warning("%s: %s", unreadable, type(exc).__name__)
        return None, unreadable
    key = _key_in(value)
    if key is None:
        log.warning("%s: it holds no text key (a bare key, or JSON with %s)", unreadable,
                    " or ".join(_SECRET_KEY_NAMES))
        return None, unreadable
    log.info("the LLM API key was read from Secrets Manager secret %r", secret_id)
    return key, None


@contextlib.contextmanager
def _botocore_debug_off():
    """botocore's DEBUG log prints response bodies, and this one is the secret: never at DEBUG, whatever the
    worker's log level."""
    botocore_log = logging.getLogger("botocore")
    saved = botocore_log.level
    botocore_log.setLevel(max(logging.INFO, botocore_log.getEffectiveLevel()))
    try:
        yield
    finally:
        botocore_log.setLevel(saved)


def _key_in(value: str | None) -> str | None:
    """The bare key, or the key inside a JSON object; None when neither."""
    text = (value or "").strip()
    if text.startswith("{"):
        try:
            document = json.loads(text)
        except ValueError:
            return None
        found = next((document[name] for name in _SECRET_KEY_NAMES if isinstance(document.get(name), str)), "")
        text = found.strip()
    return text if text and not any(c.isspace() for c in text) else None
