"""Talking to an OpenAI-compatible chat endpoint (Ollama, llama.cpp's server, vLLM, LM Studio,
OpenAI) with the maintained ``openai`` client (``pip install 'qa-cite[llm]'``).

Nothing here imports ``openai`` until a request is made, so a configuration without an endpoint
costs nothing. Every way the endpoint can fail (down, refusing, too slow, garbage, empty) becomes
one :class:`EndpointError` whose message is a one-line notice a user can read.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import QAError

DEFAULT_TIMEOUT = 30.0
"""Seconds a whole answer may take (connection, first token and the rest), unless configured."""
MAX_ANSWER_TOKENS = 250
# Small models go on to invent the next exchange ("Question: ..."); stop them there.
STOP = ["\nQuestion:", "\nPassages:", "\nFrage:"]

Message = dict[str, str]
log = logging.getLogger(__name__)


class EndpointError(QAError):
    """The model endpoint could not give a usable answer; the message says why, in one line."""


@dataclass(frozen=True)
class LLMSettings:
    """Where the language model is: base URL, model name, API key, and the time it may take."""

    url: str
    model: str | None = None
    api_key: str | None = None
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_env(
        cls, url: str | None = None, model: str | None = None, *, timeout: float | None = None
    ) -> LLMSettings | None:
        """Settings from arguments, else ``QA_LLM_URL``, ``QA_LLM_MODEL``, ``QA_LLM_API_KEY``
        and ``QA_LLM_TIMEOUT`` (seconds); ``None`` when no endpoint is set (extractive answers)."""
        url = (url or os.environ.get("QA_LLM_URL") or "").strip()
        if not url:
            return None
        if not url.startswith(("http://", "https://")):
            raise QAError(f"the model endpoint must be an http(s) URL, got {url!r}")
        if timeout is None:
            raw = os.environ.get("QA_LLM_TIMEOUT", "").strip()
            try:
                timeout = float(raw) if raw else DEFAULT_TIMEOUT
            except ValueError as exc:
                raise QAError(f"QA_LLM_TIMEOUT must be a number of seconds, got {raw!r}") from exc
        if not timeout > 0:
            raise QAError(f"the model timeout must be more than 0 seconds, got {timeout}")
        return cls(
            url=url.rstrip("/"),
            model=(model or os.environ.get("QA_LLM_MODEL") or "").strip() or None,
            api_key=os.environ.get("QA_LLM_API_KEY") or None,
            timeout=float(timeout),
        )


def _reason(exc: BaseException, settings: LLMSettings) -> str:
    """A one-line description of what went wrong with the endpoint (the details are logged)."""
    import openai

    log.warning("model endpoint %s failed: %r", settings.url, exc)
    where = settings.url
    if isinstance(exc, openai.APITimeoutError):
        return f"the model at {where} did not answer within {settings.timeout:g} s"
    if isinstance(exc, openai.APIConnectionError):
        return f"the model at {where} cannot be reached"
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return f"the model at {where} refused the request (check QA_LLM_API_KEY)"
    if isinstance(exc, openai.NotFoundError):
        return f"the model at {where} does not know model {settings.model!r}"
    if isinstance(exc, openai.APIStatusError):
        return f"the model at {where} refused the request (HTTP {exc.status_code})"
    return f"the model at {where} sent an answer that could not be read"


class ChatClient:
    """A chat-completions client for one endpoint, with a deadline on every answer."""

    def __init__(self, settings: LLMSettings) -> None:
        self.settings = settings
        self._client: Any = None
        self._model: str | None = settings.model

    def _openai(self) -> Any:
        if self._client is None:
            try:
                import openai
            except ImportError as exc:
                raise QAError(
                    "answers by a language model need the openai client: "
                    "pip install 'qa-cite[llm]'"
                ) from exc
            # No retries: a fallback answer now beats the same failure three times over.
            self._client = openai.OpenAI(
                base_url=self.settings.url,
                api_key=self.settings.api_key or "not-needed",
                timeout=self.settings.timeout,
                max_retries=0,
            )
        return self._client

    @property
    def model(self) -> str:
        """The model name: as configured, else the first one the endpoint lists."""
        if self._model is None:
            try:
                listed = [m.id for m in self._openai().models.list()]
            except QAError:
                raise
            except Exception as exc:
                raise EndpointError(_reason(exc, self.settings)) from exc
            if not listed:
                raise EndpointError(f"the model endpoint at {self.settings.url} lists no model; "
                                    "set QA_LLM_MODEL")
            self._model = str(listed[0])
        return self._model

    def stream(self, messages: Sequence[Message], *, max_tokens: int = MAX_ANSWER_TOKENS,
               temperature: float = 0.0) -> Iterator[str]:
        """The answer's text piece by piece as the model writes it. Raises EndpointError when
        the endpoint fails, answers garbage, or the whole answer takes longer than the timeout."""
        client = self._openai()  # importing the client is not the endpoint's time
        deadline = time.monotonic() + self.settings.timeout
        model = self.model
        try:
            stream = client.chat.completions.create(
                model=model, messages=list(messages), stream=True, max_tokens=max_tokens,
                temperature=temperature, stop=STOP,
            )
        except QAError:
            raise
        except Exception as exc:
            raise EndpointError(_reason(exc, self.settings)) from exc
        got_any = False
        try:
            for chunk in stream:
                if time.monotonic() > deadline:
                    raise EndpointError(f"the model at {self.settings.url} did not finish "
                                        f"within {self.settings.timeout:g} s")
                choices = getattr(chunk, "choices", None)
                if not isinstance(choices, list):
                    raise EndpointError(f"the model at {self.settings.url} sent an answer that "
                                        "could not be read")
                for choice in choices:
                    delta = getattr(getattr(choice, "delta", None), "content", None)
                    if isinstance(delta, str) and delta:
                        got_any = True
                        yield delta
        except QAError:
            raise
        except Exception as exc:
            raise EndpointError(_reason(exc, self.settings)) from exc
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        if not got_any:
            raise EndpointError(f"the model at {self.settings.url} sent an empty answer")

    def complete(self, messages: Sequence[Message], *, max_tokens: int = MAX_ANSWER_TOKENS,
                 temperature: float = 0.0) -> str:
        """The whole answer at once (see :meth:`stream`)."""
        return "".join(self.stream(messages, max_tokens=max_tokens, temperature=temperature))
