"""A scriptable OpenAI-compatible chat server on 127.0.0.1, run in a background thread (aiohttp)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Behaviour = Callable[[int, dict[str, Any]], web.StreamResponse | dict[str, Any] | None]


def completion(content: str, prompt_tokens: int = 11, completion_tokens: int = 7) -> dict[str, Any]:
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "tiny",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


@dataclass
class StubServer:
    """`behaviour(n, body)` answers the n-th request (from 0): a dict is sent as JSON, a response as is."""

    behaviour: Behaviour
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        number = len(self.requests)
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        answer = self.behaviour(number, body)
        if isinstance(answer, web.StreamResponse):
            return answer
        if answer is None:
            await asyncio.sleep(30)
            return web.json_response(completion("too late"))
        return web.json_response(answer)

    def start(self) -> StubServer:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            app = web.Application()
            app.router.add_post("/v1/chat/completions", self._chat)
            runner = web.AppRunner(app)
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]
            self._loop, self._runner = loop, runner
            ready.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


def error(status: int, message: str = "stub error") -> web.Response:
    return web.json_response({"error": {"message": message, "type": "stub", "code": status}}, status=status)


def text(status: int, body: str) -> web.Response:
    return web.Response(status=status, text=body, content_type="application/json")


def dumps(value: Any) -> str:
    return json.dumps(value)
