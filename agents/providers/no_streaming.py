"""The base of Ratchet's own litellm providers (`sim/`, `scripted/`): they answer whole messages, and a
streaming request gets a clear 400 instead of litellm's "Not implemented yet!"."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

import litellm
from litellm.llms.custom_llm import CustomLLMError
from litellm.types.utils import GenericStreamingChunk


class NoStreamingProvider(litellm.CustomLLM):
    """A litellm custom provider that refuses streaming with `no_streaming` as the message."""

    no_streaming: ClassVar[str] = "this model does not stream; call it without stream=True"

    def streaming(self, *args: Any, **kwargs: Any) -> Iterator[GenericStreamingChunk]:
        raise CustomLLMError(status_code=400, message=self.no_streaming)

    async def astreaming(  # type: ignore[override]  # litellm declares astreaming a coroutine; it iterates it as an async generator
        self, *args: Any, **kwargs: Any
    ) -> AsyncIterator[GenericStreamingChunk]:
        raise CustomLLMError(status_code=400, message=self.no_streaming)
        yield  # unreachable; makes this an async generator
