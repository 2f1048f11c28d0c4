"""The lean transport for OpenAI-compatible servers (vLLM): one aiohttp session, JSON in, JSON out.

litellm is the transport for every provider; for `hosted_vllm/...` models this one is used
instead (ModelConfig.transport "auto"), because at vLLM's request rates the client's own CPU
time is what limits an evaluation: litellm (and the openai SDK's httpx pool under it) costs
2-3 ms of CPU per request on these machines, this path about 0.15 ms (see
benchmarks/README.md). It speaks only `POST {api_base}/chat/completions`, the endpoint vLLM
serves; retries, concurrency and accounting stay in `agents.models.ModelClient`.

An aiohttp session belongs to one event loop. The transport keeps one per running loop and
`aclose()` closes it; callers that run a client inside `asyncio.run(...)` close it there.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

KEEP_ERROR_BODY = 300


class HttpStatusError(Exception):
    """The server answered with a non-2xx status."""

    def __init__(self, status: int, reason: str, body: str) -> None:
        self.status_code = status
        text = " ".join(body.split())
        text = text if len(text) <= KEEP_ERROR_BODY else text[: KEEP_ERROR_BODY - 3] + "..."
        super().__init__(f"HTTP {status} {reason}: {text}")

    @property
    def transient(self) -> bool:
        """429 and 5xx are worth a retry; any other 4xx is the request's fault."""
        return self.status_code == 429 or self.status_code >= 500


class MalformedResponseError(Exception):
    """A 200 whose body is not a chat completion (a proxy's error page, a truncated body)."""


class OpenAIHttpTransport:
    """POSTs chat completions to one OpenAI-compatible base URL (`.../v1`)."""

    def __init__(self, api_base: str, api_key: str | None, timeout_s: float) -> None:
        self.url = api_base.rstrip("/") + "/chat/completions"
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._session: aiohttp.ClientSession | None = None

    def _session_for_loop(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._session
        if session is None or session.closed or session.loop is not loop:
            if session is not None and not session.closed:
                _abandon(session)
            # No connector limit: ModelClient's own gate bounds the requests in flight.
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
            session = aiohttp.ClientSession(connector=connector, headers=self._headers, timeout=self.timeout)
            self._session = session
        return session

    async def chat(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The parsed completion; HttpStatusError, MalformedResponseError or aiohttp/timeout errors."""
        session = self._session_for_loop()
        async with session.post(self.url, data=json.dumps(payload).encode()) as response:
            body = await response.read()
            if response.status >= 300:
                raise HttpStatusError(response.status, response.reason or "", body.decode("utf-8", "replace"))
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise MalformedResponseError(f"the body of a 200 is not JSON: {body[:80]!r}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list) or not data["choices"]:
            raise MalformedResponseError(f"the body of a 200 has no choices: {body[:80]!r}")
        return data

    async def aclose(self) -> None:
        """Close the session of the running loop (connections are kept alive between calls until then)."""
        session, self._session = self._session, None
        if session is None or session.closed:
            return
        if session.loop is asyncio.get_running_loop():
            await session.close()
        else:
            _abandon(session)


def _abandon(session: aiohttp.ClientSession) -> None:
    """Drop a session whose event loop has ended (asyncio.run returned without aclose()).

    Nothing can be awaited on a closed loop; detaching marks the session closed so it does not
    warn at garbage collection, and the connector is marked closed the same way.
    """
    connector = session.connector
    session.detach()
    if connector is not None and not connector.closed:
        connector._close()
