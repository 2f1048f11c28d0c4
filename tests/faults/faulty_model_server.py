"""A faulty OpenAI-compatible chat server on 127.0.0.1 that answers as Ratchet's simulated models do.

`POST /v1/chat/completions` with `"model": "<world>"` (the served name; `sim/<world>` works too)
gets exactly the answer the offline provider `sim/<world>` gives to the same messages, tools and
seed (`agents.providers.sim.build_response`), so a cycle whose models point here must reach the
same verdict as with `sim/...` models. On a seeded share of requests it fails instead, in one of
the ways real model backends fail:

| kind | what the client sees |
| --- | --- |
| `http_5xx` | HTTP 500, 502 or 503 with a JSON error body |
| `timeout` | no answer for `hang_s` seconds (longer than the client's timeout) |
| `reset` | the connection is reset (RST) before any byte of a reply |
| `malformed` | a 200 whose body is not JSON (an HTML error page from a proxy) |
| `truncated` | a 200 whose JSON is cut short (half of them: the connection closes before the announced length) |

Whether a request fails, and how, is a sha256 of (seed, sha256 of the request body, attempt),
where `attempt` counts the earlier requests with the same body. So the faults of a run depend
only on the seed and on what the client asks, never on timing or concurrency, and a retried
request draws a fresh decision. Faults never change what a successful request is answered: the
answer is a pure function of the body, as with the simulated provider.

The server runs on its own event loop in a daemon thread, so a test (or a benchmark) can start
it, run `ratchet cycle` as a subprocess against it, and read its counters afterwards.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

FAULT_KINDS: tuple[str, ...] = ("http_5xx", "timeout", "reset", "malformed", "truncated")
STATUSES = (500, 502, 503)
MALFORMED_BODY = b"<html><head><title>502 Bad Gateway</title></head><body>upstream connect error</body></html>"


@dataclass(frozen=True)
class FaultPlan:
    """Which requests fail and how: a seeded share `rate` of them, spread over `kinds`."""

    rate: float = 0.3
    seed: int = 0
    kinds: tuple[str, ...] = FAULT_KINDS
    hang_s: float = 5.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"rate must be within [0, 1], got {self.rate}")
        unknown = set(self.kinds) - set(FAULT_KINDS)
        if unknown or not self.kinds:
            raise ValueError(f"kinds must be some of {FAULT_KINDS}, got {self.kinds}")

    def draw(self, body_digest: str, attempt: int) -> bytes:
        """The 32 seeded bytes that decide one request's fate."""
        return hashlib.sha256(f"{self.seed}:{body_digest}:{attempt}".encode()).digest()

    def fault_for(self, body_digest: str, attempt: int) -> str | None:
        """The fault for the `attempt`-th request (from 0) with this body, or None: answer it."""
        draw = self.draw(body_digest, attempt)
        if int.from_bytes(draw[:8], "big") / 2**64 >= self.rate:
            return None
        return self.kinds[int.from_bytes(draw[8:12], "big") % len(self.kinds)]


@dataclass
class ServerCounts:
    """What the server saw: requests, faults by kind, and requests answered with a completion."""

    requests: int = 0
    answered: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    bad_requests: int = 0

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "answered": self.answered,
            "bad_requests": self.bad_requests,
            "faults": {kind: self.faults[kind] for kind in FAULT_KINDS},
        }


def completion_for(body: dict[str, Any]) -> dict[str, Any]:
    """The simulated model's chat completion for one request body (what `sim/<world>` answers).

    Raises UserError for an unknown world, like the provider."""
    from litellm.types.utils import ModelResponse

    from ratchet.agents.providers.sim import build_response

    world = str(body.get("model", "")).removeprefix("sim/")
    response = build_response(ModelResponse(), world, body.get("messages") or [], body.get("tools"), body.get("seed"))
    return response.model_dump(mode="json", exclude_none=True)


class FaultyModelServer:
    """The server; `start()` binds 127.0.0.1 on a free port, `stop()` ends it (also a context manager)."""

    def __init__(self, plan: FaultPlan | None = None) -> None:
        self.plan = plan or FaultPlan()
        self.port = 0
        self.authorizations: set[str] = set()
        self._counts = ServerCounts()
        self._attempts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def base_url(self) -> str:
        """The api_base a client uses: `http://127.0.0.1:<port>/v1`."""
        return f"http://127.0.0.1:{self.port}/v1"

    def counts(self) -> dict[str, Any]:
        """A copy of the counters (safe to call from any thread)."""
        with self._lock:
            return self._counts.snapshot()

    def start(self) -> FaultyModelServer:
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._serve, args=(ready, failure), daemon=True, name="faulty-model-server"
        )
        self._thread.start()
        if not ready.wait(30) or failure:
            raise RuntimeError(f"the faulty model server did not start: {failure or 'timeout'}")
        return self

    def stop(self) -> None:
        if self._thread is not None and self._thread.is_alive() and self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> FaultyModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        # shutdown_timeout: stop() does not wait for hanging handlers, whose clients have given up
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        try:
            completion_for({"model": "humaneval", "messages": []})  # import the simulator before serving
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]
        except BaseException as exc:  # reported to start()
            failure.append(exc)
            ready.set()
            return
        self._loop = loop
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        digest = hashlib.sha256(raw).hexdigest()
        with self._lock:
            self._counts.requests += 1
            attempt = self._attempts[digest]
            self._attempts[digest] += 1
            if auth := request.headers.get("Authorization"):
                self.authorizations.add(auth)
        fault = self.plan.fault_for(digest, attempt)
        if fault is None:
            return self._answer(raw)
        with self._lock:
            self._counts.faults[fault] += 1
        return await self._fail(request, fault, self.plan.draw(digest, attempt), raw)

    def _answer(self, raw: bytes) -> web.Response:
        try:
            completion = completion_for(json.loads(raw))
        except Exception as exc:
            with self._lock:
                self._counts.bad_requests += 1
            return _error(400, f"{type(exc).__name__}: {exc}")
        with self._lock:
            self._counts.answered += 1
        return web.json_response(completion)

    async def _fail(self, request: web.Request, fault: str, draw: bytes, raw: bytes) -> web.StreamResponse:
        if fault == "http_5xx":
            return _error(STATUSES[draw[12] % len(STATUSES)], "injected backend fault")
        if fault == "timeout":
            await asyncio.sleep(self.plan.hang_s)
            return _error(504, "injected hang (the client should have given up)")
        if fault == "reset":
            _reset(request)
            return web.Response(status=500)  # never sent: the connection is gone
        if fault == "malformed":
            return web.Response(status=200, body=MALFORMED_BODY, content_type="application/json")
        return await _truncated(request, self._answer_bytes(raw), draw)

    def _answer_bytes(self, raw: bytes) -> bytes:
        """The full answer's JSON bytes (a truncated reply is a prefix of what a good one would be)."""
        try:
            return json.dumps(completion_for(json.loads(raw))).encode()
        except Exception:
            return b'{"error": {"message": "bad request"}}'


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"message": message, "type": "server_error", "code": status}}, status=status)


def _reset(request: web.Request) -> None:
    """Close the connection with a TCP RST (SO_LINGER 0), without any reply."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def _truncated(request: web.Request, body: bytes, draw: bytes) -> web.StreamResponse:
    """A 200 with the first part of `body`: cut JSON with a matching length, or a connection closed early."""
    cut = 1 + int.from_bytes(draw[13:17], "big") % (len(body) - 1)  # 1..len-1: never the whole object
    if draw[17] % 2 == 0:
        return web.Response(status=200, body=body[:cut], content_type="application/json")
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.content_length = len(body)
    await response.prepare(request)
    await response.write(body[:cut])
    if request.transport is not None:
        request.transport.close()  # flushes what was written, then closes: fewer bytes than announced
    return response
