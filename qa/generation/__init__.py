"""Answers written by a language model of the user's choice, every sentence checked against the
passage it cites (``pip install 'qa-cite[llm]'``).

>>> from qa.generation import answerer_for
>>> m = answerer_for(retriever, "http://localhost:11434/v1", "gemma3")  # None without a URL
>>> m.ask("What did Ukraine offer in Istanbul?").to_json()["sentences"]

Importing this package does not import the ``openai`` client; the first request does.
"""

from .answerer import ModelAnswerer, StreamEvent, answerer_for
from .checker import SentenceChecker, split_generated
from .client import DEFAULT_TIMEOUT, ChatClient, EndpointError, LLMSettings

__all__ = [
    "DEFAULT_TIMEOUT",
    "ChatClient",
    "EndpointError",
    "LLMSettings",
    "ModelAnswerer",
    "SentenceChecker",
    "StreamEvent",
    "answerer_for",
    "split_generated",
]
