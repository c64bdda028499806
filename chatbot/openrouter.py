"""Client for OpenRouter's HTTP API: chat completions, the model catalog and generation stats.

Every JSON body is decoded with ``parse_float=Decimal``, so a cost such as ``0.0000525`` never
passes through a float. Errors become ``OpenRouterError`` subclasses, one per failure an operator
acts on differently (credits, rate limit, outage, timeout, malformed answer...).
"""

import email.utils
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
from django.conf import settings


class OpenRouterError(Exception):
    """A call to OpenRouter failed; ``code`` names the failure, ``status`` is the HTTP status if any."""

    code = "openrouter_error"
    # Set by chat_turn_send: the stored user message whose turn failed.
    user_message: Any = None

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        metadata: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.metadata = metadata or {}
        self.retry_after = retry_after


class OpenRouterNotConfigured(OpenRouterError):
    code = "not_configured"


class OpenRouterBadRequest(OpenRouterError):
    code = "bad_request"


class OpenRouterAuthenticationError(OpenRouterError):
    code = "authentication_failed"


class OpenRouterInsufficientCredits(OpenRouterError):
    code = "insufficient_credits"


class OpenRouterForbidden(OpenRouterError):
    code = "forbidden"


class OpenRouterNotFound(OpenRouterError):
    code = "not_found"


class OpenRouterRateLimited(OpenRouterError):
    code = "rate_limited"


class OpenRouterTimeout(OpenRouterError):
    code = "timeout"


class OpenRouterUnavailable(OpenRouterError):
    code = "upstream_unavailable"


class OpenRouterMalformedResponse(OpenRouterError):
    code = "malformed_response"


# OpenRouter's documented statuses (https://openrouter.ai/docs/api-reference/errors).
_ERRORS_BY_STATUS: dict[int, type[OpenRouterError]] = {
    400: OpenRouterBadRequest,
    401: OpenRouterAuthenticationError,
    402: OpenRouterInsufficientCredits,
    403: OpenRouterForbidden,
    404: OpenRouterNotFound,
    408: OpenRouterTimeout,
    429: OpenRouterRateLimited,
}


@dataclass(frozen=True)
class ChatCompletion:
    """The parts of a chat completion the platform records."""

    id: str
    model: str
    content: str
    finish_reason: str | None
    # None when the response carried no usage at all.
    prompt_tokens: int | None
    completion_tokens: int | None
    # None when the response did not report usage.cost: the cost is then reconciled later.
    cost_usd: Decimal | None


@dataclass(frozen=True)
class Generation:
    """OpenRouter's own record of one generation, from GET /generation."""

    id: str
    model: str | None
    total_cost: Decimal
    tokens_prompt: int
    tokens_completion: int


def json_decode_exact(content: bytes) -> Any:
    """Decode a JSON document with every non-integer number as an exact Decimal."""

    def refuse_constant(name: str) -> Any:
        raise ValueError(f"{name} is not a number")

    return json.loads(content, parse_float=Decimal, parse_constant=refuse_constant)


def _retry_after_parse(value: str | None) -> float | None:
    """Return the seconds a Retry-After header asks to wait (delta-seconds or an HTTP date), or None."""
    if value is None or not value.strip():
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _error_from_body(error: Any, *, status: int | None, retry_after: float | None = None) -> OpenRouterError:
    """Return the domain error for an ``{"error": {"code", "message", "metadata"}}`` body."""
    if not isinstance(error, dict):
        error = {}
    code = error.get("code")
    if status is None and isinstance(code, int) and not isinstance(code, bool):
        status = code
    message = error.get("message") if isinstance(error.get("message"), str) else None
    metadata = error.get("metadata") if isinstance(error.get("metadata"), dict) else None
    if status is not None and status in _ERRORS_BY_STATUS:
        error_class = _ERRORS_BY_STATUS[status]
    elif status is not None and status < 500:
        error_class = OpenRouterError
    else:
        # 5xx, or an error reported inside a 200 while the model was generating.
        error_class = OpenRouterUnavailable
    text = message or (f"OpenRouter answered HTTP {status}." if status else "OpenRouter reported an error.")
    return error_class(text, status=status, metadata=metadata, retry_after=retry_after)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _cost_parse(value: Any, *, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise OpenRouterMalformedResponse(f"{name} is not a number: {value!r}.")
    cost = Decimal(value)
    if not cost.is_finite() or cost < 0:
        raise OpenRouterMalformedResponse(f"{name} is not a non-negative finite number: {value!r}.")
    return cost


def chat_completion_parse(body: Any) -> ChatCompletion:
    """Return the chat completion in a decoded response body, or raise the error it reports."""
    if not isinstance(body, dict):
        raise OpenRouterMalformedResponse("The chat completion is not a JSON object.")
    if "error" in body:
        raise _error_from_body(body["error"], status=None)
    completion_id, model = body.get("id"), body.get("model")
    if not isinstance(completion_id, str) or not completion_id.strip():
        raise OpenRouterMalformedResponse("The chat completion has no id.")
    if not isinstance(model, str) or not model.strip():
        raise OpenRouterMalformedResponse("The chat completion names no model.")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise OpenRouterMalformedResponse("The chat completion has no choices.")
    choice = choices[0]
    if choice.get("error"):
        raise _error_from_body(choice["error"], status=None)
    message = choice.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        raise OpenRouterMalformedResponse("The chat completion's first choice has no text content.")
    finish_reason = choice.get("finish_reason")

    usage = body.get("usage")
    prompt_tokens = completion_tokens = None
    cost = None
    if usage is not None:
        if not isinstance(usage, dict):
            raise OpenRouterMalformedResponse("The chat completion's usage is not an object.")
        prompt_tokens, completion_tokens = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if not _is_count(prompt_tokens) or not _is_count(completion_tokens):
            raise OpenRouterMalformedResponse("The chat completion's usage has no valid token counts.")
        if usage.get("cost") is not None:
            cost = _cost_parse(usage["cost"], name="usage.cost")
    return ChatCompletion(
        id=completion_id,
        model=model,
        content=content,
        finish_reason=finish_reason if isinstance(finish_reason, str) else None,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost_usd=cost,
    )


def generation_parse(body: Any) -> Generation:
    """Return the generation record in a decoded GET /generation body."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise OpenRouterMalformedResponse("The generation response has no data object.")
    generation_id = data.get("id")
    if not isinstance(generation_id, str) or not generation_id.strip():
        raise OpenRouterMalformedResponse("The generation has no id.")
    tokens_prompt, tokens_completion = data.get("tokens_prompt"), data.get("tokens_completion")
    if not _is_count(tokens_prompt) or not _is_count(tokens_completion):
        raise OpenRouterMalformedResponse("The generation has no valid token counts.")
    model = data.get("model")
    return Generation(
        id=generation_id,
        model=model if isinstance(model, str) else None,
        total_cost=_cost_parse(data.get("total_cost"), name="total_cost"),
        tokens_prompt=tokens_prompt,
        tokens_completion=tokens_completion,
    )


class OpenRouterClient:
    """One HTTP client for OpenRouter's chat, models and generation endpoints.

    Use it as a context manager (or call ``close()``) so its connections are released.
    """

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        app_url: str = "",
        app_title: str = "",
        timeout: float = 60.0,
        max_retries: int = 2,
        max_retry_wait: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        # Injected so tests can observe the waits without spending them.
        self.sleep = sleep
        headers = {"Accept": "application/json"}
        if app_url:
            headers["HTTP-Referer"] = app_url
        if app_title:
            headers["X-Title"] = app_title
        self._http = httpx.Client(
            base_url=self.base_url + "/", headers=headers, timeout=httpx.Timeout(timeout), transport=transport
        )

    @classmethod
    def from_settings(cls, **overrides: Any) -> "OpenRouterClient":
        """Return a client configured from the OPENROUTER_* settings."""
        options: dict[str, Any] = {
            "api_key": settings.OPENROUTER_API_KEY,
            "base_url": settings.OPENROUTER_BASE_URL,
            "app_url": settings.OPENROUTER_APP_URL,
            "app_title": settings.OPENROUTER_APP_TITLE,
            "timeout": settings.OPENROUTER_TIMEOUT,
            "max_retries": settings.OPENROUTER_MAX_RETRIES,
            "max_retry_wait": settings.OPENROUTER_MAX_RETRY_WAIT,
        }
        options.update(overrides)
        return cls(**options)

    def __enter__(self) -> "OpenRouterClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the client's connections."""
        self._http.close()

    def chat_completion(self, *, model: str, messages: list[dict[str, str]], user: str) -> ChatCompletion:
        """Send a conversation to ``model`` on behalf of the platform user ``user``; return the reply."""
        payload = {"model": model, "messages": messages, "user": user, "usage": {"include": True}}
        # A chat request is not idempotent (each attempt is billed), so only a 429 is retried.
        body = self._request("POST", "chat/completions", json_body=payload, retry_unavailable=False)
        return chat_completion_parse(body)

    def models(self) -> Any:
        """Return the decoded GET /models response (validated by the catalog sync)."""
        return self._request("GET", "models", require_key=False, retry_unavailable=True)

    def generation(self, *, generation_id: str) -> Generation:
        """Return OpenRouter's record of a generation; raise OpenRouterNotFound while it is not ready."""
        body = self._request("GET", "generation", params={"id": generation_id}, retry_unavailable=True)
        return generation_parse(body)

    def _request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, str] | None = None,
        require_key: bool = True,
        retry_unavailable: bool,
    ) -> Any:
        if require_key and not self.api_key:
            raise OpenRouterNotConfigured(
                "OPENROUTER_API_KEY is not set: create a key at https://openrouter.ai/settings/keys "
                "and put it in the environment."
            )
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        attempt = 0
        while True:
            try:
                response = self._http.request(method, path, json=json_body, params=params, headers=headers)
            except httpx.TimeoutException as exc:
                error: OpenRouterError = OpenRouterTimeout(f"OpenRouter did not answer in time ({exc}).")
            except httpx.TransportError as exc:
                error = OpenRouterUnavailable(f"Could not reach OpenRouter at {self.base_url}: {exc}.")
            else:
                if response.is_success:
                    return self._decode(response)
                error = self._error_from_response(response)
            wait = self._retry_wait(error, attempt=attempt, retry_unavailable=retry_unavailable)
            if wait is None:
                raise error
            self.sleep(wait)
            attempt += 1

    def _retry_wait(self, error: OpenRouterError, *, attempt: int, retry_unavailable: bool) -> float | None:
        """Return how long to wait before retrying after ``error``, or None to give up."""
        if attempt >= self.max_retries:
            return None
        backoff = 0.5 * 2**attempt
        if isinstance(error, OpenRouterRateLimited):
            wait = backoff if error.retry_after is None else error.retry_after
            # Holding a user's request for longer than this is worse than telling them to retry.
            return wait if wait <= self.max_retry_wait else None
        if retry_unavailable and isinstance(error, OpenRouterUnavailable | OpenRouterTimeout):
            return min(backoff, self.max_retry_wait)
        return None

    @staticmethod
    def _decode(response: httpx.Response) -> Any:
        try:
            return json_decode_exact(response.content)
        except ValueError:
            raise OpenRouterMalformedResponse(
                f"OpenRouter answered HTTP {response.status_code} with a body that is not JSON.",
                status=response.status_code,
            ) from None

    @staticmethod
    def _error_from_response(response: httpx.Response) -> OpenRouterError:
        retry_after = _retry_after_parse(response.headers.get("Retry-After"))
        try:
            body = json_decode_exact(response.content)
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        return _error_from_body(error, status=response.status_code, retry_after=retry_after)


__all__ = [
    "ChatCompletion",
    "Generation",
    "OpenRouterAuthenticationError",
    "OpenRouterBadRequest",
    "OpenRouterClient",
    "OpenRouterError",
    "OpenRouterForbidden",
    "OpenRouterInsufficientCredits",
    "OpenRouterMalformedResponse",
    "OpenRouterNotConfigured",
    "OpenRouterNotFound",
    "OpenRouterRateLimited",
    "OpenRouterTimeout",
    "OpenRouterUnavailable",
    "chat_completion_parse",
    "generation_parse",
    "json_decode_exact",
]
