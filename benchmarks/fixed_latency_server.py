"""A fixed-latency OpenAI-compatible chat server on 127.0.0.1, for overhead benchmarks.

Every `POST /v1/chat/completions` waits `--latency` seconds and then answers a valid
`chat.completion` (with `usage`) whose content is `--reply` (default `ok`); with
`"stream": true` it answers the same as server-sent events. Also `GET /v1/models` and
`GET /health`. There is no model and no state, so whatever a client loses against the ideal
`ceil(N / C) * latency` is the client's (and this server's small, measured) overhead.

    python benchmarks/fixed_latency_server.py --port 0 --latency 0.2

prints one line `listening on http://127.0.0.1:PORT` once it accepts connections (port 0 picks
a free port) and serves until SIGTERM or SIGINT.

It is a minimal HTTP/1.1 server on `asyncio.Protocol` (keep-alive, Content-Length bodies, one
request at a time per connection, which is how httpx and aiohttp clients talk) rather than a
web framework, because the point is to cost the benchmark next to nothing: the wait is a
`loop.call_later`, not a task. One process, one core; see benchmarks/README.md for its measured
capacity.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import signal
import socket
import time
from typing import Any

READY_PREFIX = "listening on "
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 413: "Payload Too Large"}


class Settings:
    """What every connection shares: the wait, the reply text and a request counter."""

    def __init__(self, latency: float, reply: str) -> None:
        self.latency = latency
        self.reply = reply
        self.counter = itertools.count()


class ChatProtocol(asyncio.Protocol):
    """One client connection: parse a request, answer it (after the wait for chat), repeat."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False
        self.keep_alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._next_request()

    def _next_request(self) -> None:
        """Handle the buffered request, if it is complete and none is in flight."""
        if self.busy or self.transport is None:
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEADER_BYTES:
                self._send(400, b'{"error": "headers too large"}', close=True)
            return
        head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length") or 0)
        if length > MAX_BODY_BYTES:
            self._send(413, b'{"error": "body too large"}', close=True)
            return
        if len(self.buffer) < end + 4 + length:
            return
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        method, _, rest = head[0].partition(" ")
        path = rest.rsplit(" ", 1)[0].split("?", 1)[0]
        self.keep_alive = headers.get("connection", "").lower() != "close"
        self.busy = True
        self._route(method, path, body)

    def _route(self, method: str, path: str, body: bytes) -> None:
        if path == "/v1/chat/completions":
            if method != "POST":
                self._send(405, b'{"error": "use POST"}')
                return
            try:
                request = json.loads(body or b"{}")
            except ValueError:
                self._send(400, b'{"error": "body is not JSON"}')
                return
            content_type, payload = completion_bytes(request, self.settings)
            loop = asyncio.get_running_loop()
            loop.call_later(self.settings.latency, self._send, 200, payload, False, content_type)
        elif path in ("/v1/models", "/models") and method == "GET":
            models = {"object": "list", "data": [{"id": "fixed", "object": "model", "created": 0, "owned_by": "bench"}]}
            self._send(200, json.dumps(models).encode())
        elif path == "/health" and method == "GET":
            self._send(200, b"ok", content_type="text/plain")
        else:
            self._send(404, json.dumps({"error": f"no route {method} {path}"}).encode())

    def _send(self, status: int, payload: bytes, close: bool = False, content_type: str = "application/json") -> None:
        if self.transport is None:
            return
        close = close or not self.keep_alive
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: {'close' if close else 'keep-alive'}\r\n\r\n"
        )
        self.transport.write(head.encode() + payload)
        if close:
            self.transport.close()
            return
        self.busy = False
        if self.buffer:
            self._next_request()


def completion_bytes(request: dict[str, Any], settings: Settings) -> tuple[str, bytes]:
    """(content type, body) of the answer to one chat request, streamed or not."""
    n = next(settings.counter)
    messages = request.get("messages") or []
    prompt_tokens = sum(len(str(m.get("content") or "").split()) for m in messages if isinstance(m, dict))
    max_tokens = int(request.get("max_tokens") or request.get("max_completion_tokens") or 16)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": min(1, max_tokens),
        "total_tokens": prompt_tokens + min(1, max_tokens),
    }
    base = {"id": f"chatcmpl-fixed-{n}", "created": int(time.time()), "model": request.get("model", "fixed")}
    if not request.get("stream"):
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": settings.reply},
            "finish_reason": "stop",
            "logprobs": None,
        }
        return "application/json", json.dumps(
            {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
        ).encode()
    chunk = {**base, "object": "chat.completion.chunk"}
    events = [
        {
            **chunk,
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": settings.reply}, "finish_reason": None}],
        },
        {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage},
    ]
    text = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    return "text/event-stream", text.encode()


async def serve(host: str, port: int, latency: float, reply: str) -> None:
    """Serve until SIGTERM or SIGINT; print the ready line once the socket listens."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    settings = Settings(latency, reply)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: ChatProtocol(settings), sock=sock, backlog=2048)
    print(f"{READY_PREFIX}http://{host}:{sock.getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="A loopback address (default 127.0.0.1).")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on stdout).")
    parser.add_argument("--latency", type=float, default=0.2, help="Seconds every completion waits (default 0.2).")
    parser.add_argument("--reply", default="ok", help="Content of every answer (default 'ok').")
    args = parser.parse_args(argv)
    if not (args.host.startswith("127.") or args.host == "localhost"):
        parser.error("--host must be a loopback address")
    asyncio.run(serve(args.host, args.port, args.latency, args.reply))


if __name__ == "__main__":
    main()
