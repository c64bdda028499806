"""A fake OpenRouter API: a real HTTP server on 127.0.0.1 answering with OpenRouter's shapes.

Tests script it (queue a chat reply, an error, a catalog, a generation that 404s for a while)
and read back what the platform sent. The real client talks to it over loopback, so headers,
JSON encoding, timeouts and status handling are all exercised; nothing reaches the internet.
"""

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

API_PREFIX = "/api/v1"
# Real GET /models responses saved on two dates (see the README there).
CATALOG_DIR = Path(__file__).resolve().parents[2] / "ai_models" / "tests" / "data"


def catalog_path(name: str) -> Path:
    """Return the path of a saved real catalog, failing clearly when the data directory is missing."""
    path = CATALOG_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the catalog tests read the real responses in {CATALOG_DIR}.")
    return path


def json_dumps_exact(value: Any) -> bytes:
    """Encode ``value`` as JSON with every Decimal written as the exact number it holds."""
    placeholders: dict[str, str] = {}

    def replace(item: Any) -> Any:
        if isinstance(item, Decimal):
            key = f"__decimal_{len(placeholders)}__"
            placeholders[key] = format(item, "f")
            return key
        if isinstance(item, dict):
            return {key: replace(inner) for key, inner in item.items()}
        if isinstance(item, list | tuple):
            return [replace(inner) for inner in item]
        return item

    text = json.dumps(replace(value))
    for key, number in placeholders.items():
        text = text.replace(f'"{key}"', number)
    return text.encode()


def chat_completion_body(
    *,
    generation_id: str,
    model: str,
    content: str,
    prompt_tokens: int,
    completion_tokens: int,
    cost: Decimal | None,
    provider: str = "DeepInfra",
) -> dict[str, Any]:
    """Return a non-streamed chat completion as OpenRouter sends it (``cost=None`` leaves usage.cost out)."""
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "image_tokens": 0},
    }
    if cost is not None:
        usage["cost"] = cost
        usage["is_byok"] = False
        usage["cost_details"] = {
            "upstream_inference_cost": None,
            "upstream_inference_prompt_cost": Decimal(0),
            "upstream_inference_completions_cost": Decimal(0),
        }
    return {
        "id": generation_id,
        "provider": provider,
        "model": model,
        "object": "chat.completion",
        "created": 1786722910,
        "choices": [
            {
                "logprobs": None,
                "finish_reason": "stop",
                "native_finish_reason": "stop",
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None, "reasoning": None},
            }
        ],
        "system_fingerprint": None,
        "usage": usage,
    }


def error_body(*, code: int, message: str, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return OpenRouter's error body."""
    error: dict[str, Any] = {"code": code, "message": message}
    if metadata is not None:
        error["metadata"] = metadata
    return {"error": error}


def generation_body(
    *, generation_id: str, model: str, total_cost: Decimal, tokens_prompt: int, tokens_completion: int
) -> dict[str, Any]:
    """Return GET /generation's answer for one generation, as OpenRouter sends it."""
    return {
        "data": {
            "id": generation_id,
            "upstream_id": "chatcmpl-791bcf62-080e-4568-87d0-94c72e3b4946",
            "total_cost": total_cost,
            "cache_discount": None,
            "upstream_inference_cost": None,
            "created_at": "2026-08-14T10:15:00.433273+00:00",
            "model": model,
            "app_id": 12345,
            "streamed": False,
            "cancelled": False,
            "provider_name": "DeepInfra",
            "latency": 1250,
            "moderation_latency": None,
            "generation_time": 1200,
            "finish_reason": "stop",
            "native_finish_reason": "stop",
            "tokens_prompt": tokens_prompt,
            "tokens_completion": tokens_completion,
            "native_tokens_prompt": tokens_prompt,
            "native_tokens_completion": tokens_completion,
            "native_tokens_reasoning": 0,
            "native_tokens_cached": 0,
            "num_media_prompt": None,
            "num_media_completion": None,
            "num_search_results": None,
            "origin": "",
            "usage": total_cost,
            "is_byok": False,
        }
    }


@dataclass
class FakeResponse:
    """One scripted answer: a status, a body (JSON-encoded unless bytes), headers, and a delay."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return json_dumps_exact(self.body)


@dataclass(frozen=True)
class ReceivedRequest:
    """What the fake received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers.items() if key.lower() == name.lower()), None)


class FakeOpenRouter:
    """A scripted OpenRouter on an ephemeral loopback port; use as a context manager."""

    def __init__(self) -> None:
        self.received: list[ReceivedRequest] = []
        self._queues: dict[tuple[str, str], deque[FakeResponse]] = {}
        # Generations OpenRouter knows about, and how many lookups of each answer 404 first.
        self.generations: dict[str, dict[str, Any]] = {}
        self.generation_not_found: dict[str, int] = {}
        self.catalog: bytes = b'{"data": []}'
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "The fake is not running."
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{API_PREFIX}"

    def __enter__(self) -> "FakeOpenRouter":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                fake._handle(self)

            def do_POST(self) -> None:
                fake._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                # A client that timed out closes the socket before the delayed answer: expected.
                pass

        self._server = Server(("127.0.0.1", 0), Handler)
        # A short poll interval, so that stopping the server does not hold each test up.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-openrouter", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # Scripting.
    def enqueue(self, method: str, path: str, *responses: FakeResponse) -> None:
        """Answer the next requests to ``path`` (below /api/v1) with ``responses``, in order."""
        with self._lock:
            self._queues.setdefault((method, API_PREFIX + path), deque()).extend(responses)

    def enqueue_chat(self, *responses: FakeResponse) -> None:
        self.enqueue("POST", "/chat/completions", *responses)

    def add_generation(self, body: dict[str, Any], *, not_found_first: int = 0) -> None:
        """Make GET /generation know ``body``'s generation, after ``not_found_first`` 404s."""
        generation_id = body["data"]["id"]
        with self._lock:
            self.generations[generation_id] = body
            self.generation_not_found[generation_id] = not_found_first

    def use_catalog_file(self, name: str) -> None:
        self.catalog = catalog_path(name).read_bytes()

    def requests_to(self, path: str) -> list[ReceivedRequest]:
        return [request for request in self.received if request.path == API_PREFIX + path]

    # Serving.
    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        request = ReceivedRequest(
            method=handler.command,
            path=url.path,
            query=parse_qs(url.query),
            headers=dict(handler.headers.items()),
            body=body,
        )
        with self._lock:
            self.received.append(request)
            queue = self._queues.get((request.method, request.path))
            scripted = queue.popleft() if queue else None
        response = scripted or self._default(request)
        if response.delay:
            time.sleep(response.delay)
        payload = response.encoded()
        try:
            handler.send_response(response.status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            for name, value in response.headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _default(self, request: ReceivedRequest) -> FakeResponse:
        if request.method == "GET" and request.path == API_PREFIX + "/models":
            return FakeResponse(body=self.catalog)
        if request.method == "GET" and request.path == API_PREFIX + "/generation":
            generation_id = (request.query.get("id") or [""])[0]
            with self._lock:
                known = generation_id in self.generations
                not_found = self.generation_not_found.get(generation_id, 0)
                if known and not_found:
                    self.generation_not_found[generation_id] = not_found - 1
            if not known or not_found:
                return FakeResponse(404, error_body(code=404, message=f"Generation {generation_id} not found"))
            return FakeResponse(body=self.generations[generation_id])
        return FakeResponse(500, error_body(code=500, message=f"The fake has no answer for {request.path}"))


@contextmanager
def fake_openrouter_for(settings: Any) -> Iterator[FakeOpenRouter]:
    """Run a fake OpenRouter and point the project's settings at it (pass pytest-django's ``settings``)."""
    with FakeOpenRouter() as fake:
        settings.OPENROUTER_BASE_URL = fake.base_url
        settings.OPENROUTER_API_KEY = "sk-or-v1-test-key"
        settings.OPENROUTER_APP_URL = "https://chatbots.example.com"
        settings.OPENROUTER_APP_TITLE = "Chatbot Platform"
        settings.OPENROUTER_TIMEOUT = 5.0
        settings.OPENROUTER_MAX_RETRIES = 2
        settings.OPENROUTER_MAX_RETRY_WAIT = 10.0
        yield fake
