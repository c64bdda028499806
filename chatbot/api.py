"""A minimal JSON chat API for signed-in users, on Django's session auth and CSRF protection.

Every answer is JSON, errors included: ``{"error": {"code", "message"[, "fields"]}}``. A user
only ever sees and writes their own sessions; anyone else's answer 404, as a missing one does.
"""

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth import authenticate, login, logout
from django.core.exceptions import RequestDataTooBig, ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.views.csrf import csrf_failure as django_csrf_failure
from django.views.decorators.csrf import ensure_csrf_cookie

from chatbot.models import Chatbot, ChatMessage, ChatSession
from chatbot.openrouter import OpenRouterError
from chatbot.services import chat_session_create, chat_turn_send

API_NAMESPACE = "chatbot_api"

# How each failed turn reaches the API's client. Failures of the platform's own OpenRouter
# account (credits, key) are a 503: the user did nothing wrong and can try again later.
TURN_ERROR_STATUS = {
    "bad_request": 422,
    "forbidden": 422,
    "rate_limited": 429,
    "insufficient_credits": 503,
    "not_configured": 503,
    "authentication_failed": 503,
    "timeout": 504,
}
TURN_ERROR_DEFAULT_STATUS = 502


class ApiError(Exception):
    """An error answered as JSON with an HTTP status."""

    def __init__(self, status: int, code: str, message: str, *, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields


def _error_response(status: int, code: str, message: str, **extra: Any) -> JsonResponse:
    error = {"code": code, "message": message}
    error.update({key: value for key, value in extra.items() if value is not None})
    return JsonResponse({"error": error}, status=status)


def _validation_error(error: ValidationError) -> ApiError:
    fields = error.message_dict if hasattr(error, "error_dict") else {"__all__": error.messages}
    return ApiError(400, "invalid", "The request is not valid.", fields=fields)


def api_view(*methods: str, login_required: bool = True) -> Callable:
    """Answer only ``methods``, only to signed-in users (unless not required), and errors as JSON."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                response = _error_response(
                    405, "method_not_allowed", f"Use {' or '.join(methods)} here, not {request.method}."
                )
                response["Allow"] = ", ".join(methods)
                return response
            if login_required and not request.user.is_authenticated:
                return _error_response(401, "not_authenticated", "Sign in first (POST /api/login/).")
            try:
                return view(request, *args, **kwargs)
            except ApiError as error:
                return _error_response(error.status, error.code, error.message, fields=error.fields)
            except ValidationError as error:
                api_error = _validation_error(error)
                return _error_response(api_error.status, api_error.code, api_error.message, fields=api_error.fields)

        return wrapper

    return decorator


def _json_body(request: HttpRequest) -> dict[str, Any]:
    try:
        raw = request.body
    except RequestDataTooBig:
        raise ApiError(413, "too_large", "The request body is too large.") from None
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "The request body must be a JSON object.")
    return body


def _own_session(request: HttpRequest, session_id: int) -> ChatSession:
    session = ChatSession.objects.select_related("chatbot__ai_model", "user").filter(pk=session_id).first()
    if session is None or session.user_id != request.user.pk:
        raise ApiError(404, "not_found", "No such session.")
    return session


def _chatbot_data(chatbot: Chatbot) -> dict[str, Any]:
    return {"id": chatbot.pk, "name": chatbot.name, "model": chatbot.ai_model.openrouter_id}


def _session_data(session: ChatSession) -> dict[str, Any]:
    return {
        "id": session.pk,
        "chatbot": _chatbot_data(session.chatbot),
        "title": session.title,
        "created_at": session.created_at.isoformat(),
    }


def _message_data(message: ChatMessage) -> dict[str, Any]:
    return {
        "id": message.pk,
        "role": message.role,
        "content": message.content,
        "created_at": message.created_at.isoformat(),
        "failure": {"code": message.failure_code, "message": message.failure_message} if message.failure_code else None,
    }


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """Answer a CSRF failure as JSON on the API, and as Django's usual page elsewhere."""
    match = getattr(request, "resolver_match", None)
    if match is not None and API_NAMESPACE in match.namespaces:
        return _error_response(
            403, "csrf_failed", f"CSRF verification failed ({reason}). Send the X-CSRFToken header from GET /api/csrf/."
        )
    return django_csrf_failure(request, reason=reason)


@ensure_csrf_cookie
@api_view("GET", login_required=False)
def csrf_view(request: HttpRequest) -> JsonResponse:
    """Set the CSRF cookie and return its token, to send back in the X-CSRFToken header."""
    return JsonResponse({"csrf_token": get_token(request)})


@api_view("POST", login_required=False)
def login_view(request: HttpRequest) -> JsonResponse:
    """Sign a user in with a username and password."""
    body = _json_body(request)
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
        raise ApiError(400, "invalid", "Send a username and a password.")
    user = authenticate(request, username=username, password=password)
    if user is None:
        raise ApiError(400, "invalid_credentials", "Wrong username or password, or an inactive account.")
    login(request, user)
    # Signing in rotates the CSRF token: hand the new one over.
    return JsonResponse({"user": {"id": user.pk, "username": user.get_username()}, "csrf_token": get_token(request)})


@api_view("POST")
def logout_view(request: HttpRequest) -> HttpResponse:
    """Sign the user out."""
    logout(request)
    return HttpResponse(status=204)


@api_view("GET")
def chatbots_view(request: HttpRequest) -> JsonResponse:
    """List the chatbots a user can talk to."""
    chatbots = Chatbot.objects.filter(is_active=True).select_related("ai_model").order_by("name", "id")
    return JsonResponse({"chatbots": [_chatbot_data(chatbot) for chatbot in chatbots]})


@api_view("GET", "POST")
def sessions_view(request: HttpRequest) -> JsonResponse:
    """List the user's sessions (GET), or start one with a chatbot (POST ``{"chatbot": id, "title"?}``)."""
    if request.method == "GET":
        sessions = ChatSession.objects.filter(user=request.user).select_related("chatbot__ai_model")
        return JsonResponse({"sessions": [_session_data(session) for session in sessions]})
    body = _json_body(request)
    chatbot_id, title = body.get("chatbot"), body.get("title", "")
    if isinstance(chatbot_id, bool) or not isinstance(chatbot_id, int):
        raise ApiError(400, "invalid", "The request is not valid.", fields={"chatbot": ["Give a chatbot's id."]})
    if not isinstance(title, str):
        raise ApiError(400, "invalid", "The request is not valid.", fields={"title": ["The title must be a string."]})
    chatbot = Chatbot.objects.select_related("ai_model").filter(pk=chatbot_id, is_active=True).first()
    if chatbot is None:
        raise ApiError(400, "invalid", "The request is not valid.", fields={"chatbot": ["No such chatbot."]})
    session = chat_session_create(user=request.user, chatbot=chatbot, title=title)
    return JsonResponse(_session_data(session), status=201)


@api_view("GET")
def session_view(request: HttpRequest, session_id: int) -> JsonResponse:
    """Return one of the user's sessions."""
    return JsonResponse(_session_data(_own_session(request, session_id)))


@api_view("GET", "POST")
def messages_view(request: HttpRequest, session_id: int) -> JsonResponse:
    """List a session's messages (GET), or send one and return the reply (POST ``{"content": text}``)."""
    session = _own_session(request, session_id)
    if request.method == "GET":
        messages = session.messages.order_by("created_at", "id")
        return JsonResponse({"session": session.pk, "messages": [_message_data(message) for message in messages]})
    content = _json_body(request).get("content")
    if not isinstance(content, str):
        raise ApiError(400, "invalid", "The request is not valid.", fields={"content": ["Write a message."]})
    try:
        reply = chat_turn_send(session=session, content=content)
    except OpenRouterError as error:
        response = _error_response(
            TURN_ERROR_STATUS.get(error.code, TURN_ERROR_DEFAULT_STATUS),
            error.code,
            f"The reply failed: {error.message}",
            user_message=_message_data(error.user_message) if error.user_message is not None else None,
        )
        if error.retry_after is not None:
            response["Retry-After"] = str(max(1, round(error.retry_after)))
        return response
    return JsonResponse({"message": _message_data(reply.in_reply_to), "reply": _message_data(reply)}, status=201)
