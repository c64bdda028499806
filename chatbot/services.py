"""Write side of the chatbot app: every row a report reads enters through here."""

import functools
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from itertools import islice
from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.db import IntegrityError, connections, models, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper
from django.utils import timezone

from accounts.models import User
from ai_models.models import AIModel
from ai_models.services import FREE_SUFFIX, openrouter_id_provider
from chatbot.models import Chatbot, ChatMessage, ChatSession, OpenRouterRequestCost
from chatbot.openrouter import (
    Generation,
    OpenRouterAuthenticationError,
    OpenRouterClient,
    OpenRouterError,
    OpenRouterMalformedResponse,
    OpenRouterNotConfigured,
    OpenRouterNotFound,
)

COST_DECIMAL_PLACES = OpenRouterRequestCost._meta.get_field("cost_usd").decimal_places


def cost_parse(*, value: Decimal | str | int) -> Decimal:
    """Return ``value`` as an exact, non-negative USD cost, or raise ValidationError."""
    if isinstance(value, bool) or not isinstance(value, Decimal | str | int):
        # A float has already lost the exact figure; refuse it rather than guess.
        raise ValidationError({"cost_usd": f"Cost must be a Decimal, str or int, not {type(value).__name__}."})
    try:
        cost = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise ValidationError({"cost_usd": f"{value!r} is not a number."}) from None
    if not cost.is_finite():
        raise ValidationError({"cost_usd": f"{value!r} is not a finite number."})
    if cost < 0:
        raise ValidationError({"cost_usd": "Cost cannot be negative."})
    if cost != cost.quantize(Decimal(1).scaleb(-COST_DECIMAL_PLACES), rounding="ROUND_DOWN"):
        raise ValidationError({"cost_usd": f"Cost has more than {COST_DECIMAL_PLACES} decimal places."})
    return cost


def _tokens_parse(*, name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError({name: f"{name} must be an integer, not {type(value).__name__}."})
    if value < 0:
        raise ValidationError({name: f"{name} cannot be negative."})
    return value


# Built once: CostStatus.values makes a new list at every call.
COST_STATUSES = tuple(OpenRouterRequestCost.CostStatus.values)
UNKNOWN_USER = "Unknown user: it must be a saved user."
UNKNOWN_AI_MODEL = "Unknown AI model: it must be a saved AI model."
SESSION_NOT_THE_USERS = "The session must be a saved session of the same user."
# A request's errors are listed in the order of request_cost_record's arguments.
_ERROR_ORDER = (
    "row",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "user",
    "user_id",
    "ai_model",
    "ai_model_id",
    "session",
    "session_id",
    "generation_id",
    "total_tokens",
    "created_at",
    "cost_status",
)
# The columns whose limits (length, integer range, digits) full_clean() would check.
_LIMITED_FIELDS = tuple(
    OpenRouterRequestCost._meta.get_field(name)
    for name in ("generation_id", "prompt_tokens", "completion_tokens", "total_tokens", "cost_usd")
)
_SESSION_FIELD = OpenRouterRequestCost._meta.get_field("session")
_COST_FIELD = OpenRouterRequestCost._meta.get_field("cost_usd")
_CREATED_AT_FIELD = OpenRouterRequestCost._meta.get_field("created_at")
# The columns a request is written with, in this order (its id is the database's).
_ROW_FIELDS = tuple(
    OpenRouterRequestCost._meta.get_field(name)
    for name in (
        "user",
        "ai_model",
        "session",
        "generation_id",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "cost_usd",
        "cost_status",
        "created_at",
    )
)


def _errors_ordered(errors: dict[str, list[str]]) -> dict[str, list[str]]:
    return dict(sorted(errors.items(), key=lambda item: _ERROR_ORDER.index(item[0])))


def _request_cost_figures_parse(
    *,
    prompt_tokens: int,
    completion_tokens: int,
    cost_usd: Decimal | str | int,
    generation_id: str | None,
    created_at: datetime | None,
    cost_status: str,
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Return a request's own figures, parsed, and what is wrong with them (its references aside)."""
    errors: dict[str, list[str]] = {}
    values: dict[str, Any] = {"generation_id": generation_id, "created_at": created_at, "cost_status": cost_status}
    try:
        values["prompt_tokens"] = _tokens_parse(name="prompt_tokens", value=prompt_tokens)
    except ValidationError as error:
        errors.update(error.message_dict)
    try:
        values["completion_tokens"] = _tokens_parse(name="completion_tokens", value=completion_tokens)
    except ValidationError as error:
        errors.update(error.message_dict)
    try:
        values["cost_usd"] = cost_parse(value=cost_usd)
    except ValidationError as error:
        errors.update(error.message_dict)
    if generation_id is not None and (not isinstance(generation_id, str) or not generation_id.strip()):
        errors["generation_id"] = ["generation_id must be a non-empty string or None."]
    if created_at is not None and timezone.is_naive(created_at):
        errors["created_at"] = ["created_at must be timezone-aware."]
    if cost_status not in COST_STATUSES:
        errors["cost_status"] = [f"cost_status must be one of {', '.join(COST_STATUSES)}."]
    elif cost_status == OpenRouterRequestCost.CostStatus.UNKNOWN:
        if values.get("cost_usd") not in (None, 0):
            errors["cost_usd"] = ["An unknown cost is recorded as 0 until it is reconciled."]
        if generation_id is None:
            errors["generation_id"] = ["An unknown cost needs the generation_id to reconcile it by."]
    if "prompt_tokens" in values and "completion_tokens" in values:
        values["total_tokens"] = values["prompt_tokens"] + values["completion_tokens"]
    return values, errors


def _decimal_within(value: Decimal, *, max_digits: int, decimal_places: int) -> bool:
    _, digits, exponent = value.as_tuple()
    return (
        0 <= value < 10 ** (max_digits - decimal_places) and exponent >= -decimal_places and len(digits) <= max_digits
    )


@functools.cache
def _limits_surely_met() -> dict[str, Callable[[Any], bool]]:
    """Return, per limited column, a quick test that a value is well within what its validators accept.

    The validators (and their messages) stay the rule; the quick tests only spare running them on
    every row of a big import: a value that fails one is then checked by the validators themselves.
    """
    tests: dict[str, Callable[[Any], bool]] = {}
    for field in _LIMITED_FIELDS:
        if field.max_length is not None:
            tests[field.name] = lambda value, limit=field.max_length: len(value) <= limit
        elif isinstance(field, models.DecimalField):
            tests[field.name] = functools.partial(
                _decimal_within, max_digits=field.max_digits, decimal_places=field.decimal_places
            )
        else:
            # Its validators hold the database's integer range (connection-dependent, hence built lazily).
            largest = min(v.limit_value for v in field.validators if isinstance(v, MaxValueValidator))
            tests[field.name] = lambda value, largest=largest: 0 <= value <= largest
    return tests


def _request_cost_limits_check(*, values: dict[str, Any]) -> dict[str, list[str]]:
    """Return what the request table's columns cannot hold of ``values``, in full_clean()'s words."""
    errors: dict[str, list[str]] = {}
    surely_met = _limits_surely_met()
    for field in _LIMITED_FIELDS:
        value = values.get(field.name)
        if value is None or surely_met[field.name](value):
            continue
        try:
            field.run_validators(value)
        except ValidationError as error:
            errors[field.name] = error.messages
    return errors


def _session_missing_message(*, session_id: int) -> str:
    """Return the message full_clean() gives for a session that does not exist (any more)."""
    return ValidationError(
        _SESSION_FIELD.error_messages["invalid"],
        params={
            "model": ChatSession._meta.verbose_name,
            "pk": session_id,
            "field": _SESSION_FIELD.remote_field.field_name,
            "value": session_id,
        },
    ).messages[0]


def _in_transaction(connection: BaseDatabaseWrapper) -> bool:
    return not connection.get_autocommit()


def _key_share_lock(connection: BaseDatabaseWrapper) -> str:
    """Return the locking clause for a referenced row checked inside a transaction ("" if none is needed).

    The foreign keys are checked when the transaction commits, and lock the rows they find then.
    Locking them as they are checked here means a row deleted in between cannot fail that commit:
    the deletion waits instead. Alone (in autocommit), the INSERT checks the keys as it runs.
    """
    if connection.vendor == "postgresql" and _in_transaction(connection):
        return " FOR KEY SHARE"
    return ""


@dataclass(frozen=True)
class _RequestCostLookup:
    user_exists: bool
    ai_model_exists: bool
    session_exists: bool
    stored_id: int | None


@functools.cache
def _lookup_sql(*, using: str, lock: str) -> str:
    connection = connections[using]
    quote = connection.ops.quote_name
    # The SQL names only the models' tables and columns; every value is a parameter.
    exists = [
        f"EXISTS (SELECT 1 FROM {quote(model._meta.db_table)} WHERE {quote(model._meta.pk.column)} = %s{lock})"  # noqa: S608
        for model in (User, AIModel, ChatSession)
    ]
    requests = OpenRouterRequestCost._meta
    stored = (
        f"(SELECT {quote(requests.pk.column)} FROM {quote(requests.db_table)} "  # noqa: S608
        f"WHERE {quote(requests.get_field('generation_id').column)} = %s)"
    )
    return f"SELECT {', '.join(exists)}, {stored}"


def _request_cost_lookup(
    *, using: str, user_id: Any, ai_model_id: Any, session_id: Any, generation_id: str | None
) -> _RequestCostLookup:
    """Return, in one query, which referenced rows exist and the id of the request stored under generation_id."""
    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute(
            _lookup_sql(using=using, lock=_key_share_lock(connection)),
            [user_id, ai_model_id, session_id, generation_id],
        )
        user_exists, ai_model_exists, session_exists, stored_id = cursor.fetchone()
    return _RequestCostLookup(
        user_exists=bool(user_exists),
        ai_model_exists=bool(ai_model_exists),
        session_exists=bool(session_exists),
        stored_id=stored_id,
    )


@functools.cache
def _insert_sql(*, using: str) -> str:
    connection = connections[using]
    quote = connection.ops.quote_name
    returning = (
        f" RETURNING {quote(OpenRouterRequestCost._meta.pk.column)}"
        if connection.features.can_return_columns_from_insert
        else ""
    )
    return (
        f"INSERT INTO {quote(OpenRouterRequestCost._meta.db_table)} "  # noqa: S608
        f"({', '.join(quote(field.column) for field in _ROW_FIELDS)}) "
        f"VALUES ({', '.join(['%s'] * len(_ROW_FIELDS))}){returning}"
    )


def _insert_values(*, connection: BaseDatabaseWrapper, request_cost: OpenRouterRequestCost) -> list[Any]:
    """Return the values of ``request_cost`` in the order of _ROW_FIELDS, ready for the database."""
    return [
        request_cost.user_id,
        request_cost.ai_model_id,
        request_cost.session_id,
        request_cost.generation_id,
        request_cost.prompt_tokens,
        request_cost.completion_tokens,
        request_cost.total_tokens,
        _COST_FIELD.get_db_prep_save(request_cost.cost_usd, connection),
        # A plain str: the database drivers would write an enum member by its name.
        str(request_cost.cost_status),
        _CREATED_AT_FIELD.get_db_prep_save(request_cost.created_at, connection),
    ]


@functools.cache
def _record_at_once_sql(*, using: str, lock: str) -> str:
    """Return PostgreSQL's look-up and INSERT in one statement: the INSERT runs only if the look-up allows it."""
    connection = connections[using]
    quote = connection.ops.quote_name
    requests = OpenRouterRequestCost._meta
    generation_id = quote(requests.get_field("generation_id").column)
    # Typed, so that the SELECT feeding the INSERT has the columns' own types.
    values = ", ".join(f"%s::{field.cast_db_type(connection)}" for field in _ROW_FIELDS)
    return (
        f"WITH lookup (user_exists, ai_model_exists, session_exists, stored_id) AS "  # noqa: S608
        f"({_lookup_sql(using=using, lock=lock)}), "
        f"inserted AS (INSERT INTO {quote(requests.db_table)} "
        f"({', '.join(quote(field.column) for field in _ROW_FIELDS)}) SELECT {values} FROM lookup "
        f"WHERE user_exists AND ai_model_exists AND (session_exists OR %s) AND stored_id IS NULL "
        f"ON CONFLICT ({generation_id}) WHERE {generation_id} IS NOT NULL DO NOTHING "
        f"RETURNING {quote(requests.pk.column)}) "
        f"SELECT user_exists, ai_model_exists, session_exists, stored_id, (SELECT * FROM inserted) FROM lookup"
    )


def _request_cost_insert(*, using: str, request_cost: OpenRouterRequestCost) -> None:
    """INSERT ``request_cost`` as save(force_insert=True) would, and give it its id.

    One SQL text, built once: compiling the INSERT was a third of a call's own time. Like
    bulk_create(), it sends no save signals (the project keeps its logic out of signals).
    """
    connection = connections[using]
    values = _insert_values(connection=connection, request_cost=request_cost)
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(using=using), values)
        if connection.features.can_return_columns_from_insert:
            (pk,) = cursor.fetchone()
        else:
            pk = connection.ops.last_insert_id(
                cursor, OpenRouterRequestCost._meta.db_table, OpenRouterRequestCost._meta.pk.column
            )
    _request_cost_stored(request_cost=request_cost, pk=pk, using=using)


def _request_cost_stored(*, request_cost: OpenRouterRequestCost, pk: int, using: str) -> None:
    """Mark ``request_cost`` as the row stored under ``pk``, as save() leaves an instance."""
    request_cost.pk = pk
    request_cost._state.adding = False
    request_cost._state.db = using


def _reference_errors(
    *, lookup: _RequestCostLookup, user_id: Any, ai_model_id: Any, session_id: Any
) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if user_id is None or not lookup.user_exists:
        errors["user"] = [UNKNOWN_USER]
    if ai_model_id is None or not lookup.ai_model_exists:
        errors["ai_model"] = [UNKNOWN_AI_MODEL]
    if session_id is not None and not lookup.session_exists:
        errors["session"] = [_session_missing_message(session_id=session_id)]
    return errors


def request_cost_record(
    *,
    user: User,
    ai_model: AIModel,
    prompt_tokens: int,
    completion_tokens: int,
    cost_usd: Decimal | str | int,
    session: ChatSession | None = None,
    generation_id: str | None = None,
    created_at: datetime | None = None,
    cost_status: str = OpenRouterRequestCost.CostStatus.BILLED,
) -> OpenRouterRequestCost:
    """Record one OpenRouter request; recording a known generation_id again returns the stored row.

    ``cost_status="unknown"`` records a request whose cost OpenRouter has not reported yet: its
    cost must be 0 and its generation_id given, so ``reconcile_openrouter_costs`` can fill it in.

    On PostgreSQL one statement, when the figures are valid: it checks the user, model and
    session, looks the generation_id up and INSERTs only if all is well. Otherwise (and on
    SQLite) two queries: that look-up, then the INSERT. Not ``@transaction.atomic``: alone, the
    statement is its own transaction (a BEGIN, COMMIT and savepoint around it would triple the
    round trips of every chat turn); inside a caller's transaction the INSERT gets a savepoint,
    so that a concurrent writer of the same generation_id leaves that transaction usable.
    """
    values, errors = _request_cost_figures_parse(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost_usd=cost_usd,
        generation_id=generation_id,
        created_at=created_at,
        cost_status=cost_status,
    )
    user_id = user.pk if isinstance(user, User) else None
    ai_model_id = ai_model.pk if isinstance(ai_model, AIModel) else None
    session_id = None
    if session is not None:
        if session.pk is None or session.user_id != getattr(user, "pk", None):
            errors["session"] = [SESSION_NOT_THE_USERS]
        else:
            session_id = session.pk
    using = router.db_for_write(OpenRouterRequestCost)
    connection = connections[using]
    references = {"user_id": user_id, "ai_model_id": ai_model_id, "session_id": session_id}

    def request_cost_new() -> OpenRouterRequestCost:
        return OpenRouterRequestCost(
            user=user,
            ai_model=ai_model,
            session=session,
            generation_id=generation_id,
            prompt_tokens=values["prompt_tokens"],
            completion_tokens=values["completion_tokens"],
            total_tokens=values["total_tokens"],
            cost_usd=values["cost_usd"],
            cost_status=cost_status,
            created_at=created_at or timezone.now(),
        )

    if (
        not errors
        and connection.vendor == "postgresql"
        and user_id is not None
        and ai_model_id is not None
        and not _request_cost_limits_check(values=values)
    ):
        recorded = _request_cost_record_at_once(using=using, request_cost=request_cost_new(), references=references)
        if recorded is not None:
            return recorded

    lookup = _request_cost_lookup(
        using=using, generation_id=None if "generation_id" in errors else generation_id, **references
    )
    errors.update(_reference_errors(lookup=lookup, **references))
    if errors:
        raise ValidationError(_errors_ordered(errors))

    if lookup.stored_id is not None:
        stored = OpenRouterRequestCost.objects.using(using).filter(pk=lookup.stored_id).first()
        # Gone already (deleted in between): record the request anew.
        if stored is not None:
            return stored

    errors = _request_cost_limits_check(values=values)
    if errors:
        raise ValidationError(_errors_ordered(errors))
    request_cost = request_cost_new()
    try:
        with transaction.atomic(using=using) if _in_transaction(connection) else nullcontext():
            _request_cost_insert(using=using, request_cost=request_cost)
    except IntegrityError as error:
        return _request_cost_after_conflict(
            using=using, error=error, generation_id=generation_id, references=references
        )
    return request_cost


def _server_binding_cursor(connection: BaseDatabaseWrapper) -> CursorWrapper:
    """Return a cursor of ``connection`` (PostgreSQL) that sends its parameters apart from the SQL.

    Django's own cursors put the values into the SQL text, which psycopg can never prepare; with
    the values apart, psycopg prepares a statement run often on the connection (the
    ``prepare_threshold`` of the database's OPTIONS): the server then plans it once per
    connection, not once per request.
    """
    from django.db.backends.postgresql.base import ServerBindingCursor

    connection.ensure_connection()
    connection.validate_thread_sharing()
    cursor = ServerBindingCursor(connection.connection)
    # As connection.cursor() wraps its own: logged when queries are, database errors as Django's.
    return connection.make_debug_cursor(cursor) if connection.queries_logged else connection.make_cursor(cursor)


def _request_cost_record_at_once(
    *, using: str, request_cost: OpenRouterRequestCost, references: dict[str, Any]
) -> OpenRouterRequestCost | None:
    """Record ``request_cost`` in one statement (PostgreSQL); None when the two-query path must decide.

    Returns the inserted row, or the row stored under its generation_id; raises the clear
    ValidationError of a missing user, model or session, exactly as the look-up would.
    """
    connection = connections[using]
    parameters = [
        references["user_id"],
        references["ai_model_id"],
        references["session_id"],
        request_cost.generation_id,
        *_insert_values(connection=connection, request_cost=request_cost),
        references["session_id"] is None,
    ]
    sql = _record_at_once_sql(using=using, lock=_key_share_lock(connection))
    try:
        with (
            transaction.atomic(using=using) if _in_transaction(connection) else nullcontext(),
            _server_binding_cursor(connection) as cursor,
        ):
            cursor.execute(sql, parameters)
            user_exists, ai_model_exists, session_exists, stored_id, inserted_id = cursor.fetchone()
    except IntegrityError as error:
        return _request_cost_after_conflict(
            using=using, error=error, generation_id=request_cost.generation_id, references=references
        )
    if inserted_id is not None:
        _request_cost_stored(request_cost=request_cost, pk=inserted_id, using=using)
        return request_cost
    lookup = _RequestCostLookup(
        user_exists=user_exists, ai_model_exists=ai_model_exists, session_exists=session_exists, stored_id=stored_id
    )
    errors = _reference_errors(lookup=lookup, **references)
    if errors:
        raise ValidationError(_errors_ordered(errors))
    if request_cost.generation_id is None:
        return None
    # Stored before (the look-up found it) or by a concurrent writer since (ON CONFLICT skipped
    # the row): the stored row. Gone again in between: the two-query path records it anew.
    return OpenRouterRequestCost.objects.using(using).filter(generation_id=request_cost.generation_id).first()


def _request_cost_after_conflict(
    *, using: str, error: IntegrityError, generation_id: str | None, references: dict[str, Any]
) -> OpenRouterRequestCost:
    """Return the row another writer stored under generation_id, or raise what the INSERT's failure means."""
    if generation_id is not None:
        # Another writer stored the same generation_id since the lookup.
        stored = OpenRouterRequestCost.objects.using(using).filter(generation_id=generation_id).first()
        if stored is not None:
            return stored
    # Or a referenced row was deleted since: say which, as if it had been gone from the start.
    lookup = _request_cost_lookup(using=using, generation_id=None, **references)
    errors = _reference_errors(lookup=lookup, **references)
    if errors:
        raise ValidationError(_errors_ordered(errors)) from error
    raise error


@dataclass(frozen=True, kw_only=True, slots=True)
class RequestCostInput:
    """One request to import: request_cost_record's arguments, with the user, model and session by id."""

    user_id: int
    ai_model_id: int
    session_id: int | None = None
    generation_id: str | None = None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal | str | int
    created_at: datetime | None = None
    cost_status: str = OpenRouterRequestCost.CostStatus.BILLED


@dataclass(frozen=True)
class RequestCostImportResult:
    """What an import stored."""

    inserted: int
    # Rows whose generation_id was stored already, or came earlier in the same import.
    skipped: int


# Rows validated, checked and written at a time, so that an import of millions of rows does not
# hold them all in memory.
IMPORT_BATCH_ROWS = 50_000
# Invalid rows described one by one in the error; the rest are counted.
IMPORT_ERRORS_SHOWN = 20
_IMPORT_TABLE = "request_cost_import"
_MAX_ID = 2**63 - 1

T = TypeVar("T")


def _batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _is_id(value: object) -> bool:
    # type() rather than isinstance(): True is an int too, and not an id.
    return type(value) is int and 0 < value <= _MAX_ID


def _import_row_parse(*, row: object, now: datetime) -> tuple[tuple | None, dict[str, list[str]]]:
    """Return a row's values in the order of _ROW_FIELDS, or what is wrong with it."""
    if not isinstance(row, RequestCostInput):
        return None, {"row": [f"Expected a RequestCostInput, not {type(row).__name__}."]}
    values, errors = _request_cost_figures_parse(
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        cost_usd=row.cost_usd,
        generation_id=row.generation_id,
        created_at=row.created_at,
        cost_status=row.cost_status,
    )
    if not _is_id(row.user_id):
        errors["user_id"] = [UNKNOWN_USER]
    if not _is_id(row.ai_model_id):
        errors["ai_model_id"] = [UNKNOWN_AI_MODEL]
    if row.session_id is not None and not _is_id(row.session_id):
        errors["session_id"] = [SESSION_NOT_THE_USERS]
    if not errors:
        errors = _request_cost_limits_check(values=values)
    if errors:
        return None, errors
    return (
        row.user_id,
        row.ai_model_id,
        row.session_id,
        row.generation_id,
        values["prompt_tokens"],
        values["completion_tokens"],
        values["total_tokens"],
        values["cost_usd"],
        # A plain str: the database drivers would write an enum member by its name.
        str(row.cost_status),
        row.created_at or now,
    ), {}


class _ImportReferences:
    """The users, models and sessions an import refers to, each looked up once, a batch at a time."""

    def __init__(self, *, connection: BaseDatabaseWrapper) -> None:
        self.connection = connection
        self.users: set[int] = set()
        self.ai_models: set[int] = set()
        self.session_users: dict[int, int] = {}
        self.looked_up: dict[type, set[int]] = {User: set(), AIModel: set(), ChatSession: set()}

    def _look_up(self, model: type, ids: set[int]) -> list[tuple]:
        """Return (id, …) of the rows of ``ids`` that exist, for ids not looked up before."""
        ids = sorted(ids - self.looked_up[model])
        self.looked_up[model].update(ids)
        if not ids:
            return []
        quote = self.connection.ops.quote_name
        columns = [model._meta.pk.column]
        if model is ChatSession:
            columns.append(ChatSession._meta.get_field("user").column)
        lock = _key_share_lock(self.connection)
        # Sorted, so that concurrent imports lock the rows in the same order.
        chunk_size = self.connection.features.max_query_params or 10_000
        found = []
        with self.connection.cursor() as cursor:
            for start in range(0, len(ids), chunk_size):
                chunk = ids[start : start + chunk_size]
                cursor.execute(
                    f"SELECT {', '.join(quote(column) for column in columns)} FROM {quote(model._meta.db_table)} "  # noqa: S608
                    f"WHERE {quote(columns[0])} IN ({', '.join(['%s'] * len(chunk))}){lock}",
                    chunk,
                )
                found.extend(cursor.fetchall())
        return found

    def errors(self, *, references: list[tuple[int, int, int, int | None]]) -> dict[int, dict[str, list[str]]]:
        """Return the errors of the rows (number, user_id, ai_model_id, session_id) whose references are wrong."""
        self.users.update(pk for (pk,) in self._look_up(User, {reference[1] for reference in references}))
        self.ai_models.update(pk for (pk,) in self._look_up(AIModel, {reference[2] for reference in references}))
        sessions = {reference[3] for reference in references if reference[3] is not None}
        self.session_users.update(self._look_up(ChatSession, sessions))
        errors: dict[int, dict[str, list[str]]] = {}
        for number, user_id, ai_model_id, session_id in references:
            row_errors = {}
            if user_id not in self.users:
                row_errors["user_id"] = [UNKNOWN_USER]
            if ai_model_id not in self.ai_models:
                row_errors["ai_model_id"] = [UNKNOWN_AI_MODEL]
            if session_id is not None:
                if session_id not in self.session_users:
                    row_errors["session_id"] = [_session_missing_message(session_id=session_id)]
                elif self.session_users[session_id] != user_id:
                    row_errors["session_id"] = [SESSION_NOT_THE_USERS]
            if row_errors:
                errors[number] = row_errors
        return errors


def _import_values(*, connection: BaseDatabaseWrapper, rows: list[tuple]) -> Iterator[list]:
    """Yield the parsed rows' values as the database takes them (the cost and the time adapted)."""
    cost, created_at = _ROW_FIELDS.index(_COST_FIELD), _ROW_FIELDS.index(_CREATED_AT_FIELD)
    for row in rows:
        values = list(row)
        values[cost] = _COST_FIELD.get_db_prep_value(values[cost], connection)
        # As DateTimeField.get_db_prep_value ends; the value is known to be aware already.
        values[created_at] = connection.ops.adapt_datetimefield_value(values[created_at])
        yield values


class _PostgresImportWriter:
    """COPY each batch straight into the request table, or through a temporary table when it must skip rows.

    COPY cannot skip a row whose generation_id is stored already: a batch holding one (an import
    run again, or a concurrent writer of the same request) fails its COPY, which its savepoint
    undoes, and goes through a temporary table and INSERT ... ON CONFLICT DO NOTHING instead.
    A batch of new rows, the usual case, is written once: its rows stream to the server while
    the next are converted, and the rollup triggers run once for it.
    """

    def __init__(self, *, connection: BaseDatabaseWrapper) -> None:
        self.connection = connection
        self.inserted = 0
        self.staging = False
        quote = connection.ops.quote_name
        self.table = quote(OpenRouterRequestCost._meta.db_table)
        self.columns = ", ".join(quote(field.column) for field in _ROW_FIELDS)

    def _copy(self, *, table: str, rows: list[tuple]) -> None:
        connection = self.connection
        with (
            connection.cursor() as cursor,
            connection.wrap_database_errors,
            cursor.copy(f"COPY {table} ({self.columns}) FROM STDIN") as copy,
        ):
            for values in _import_values(connection=connection, rows=rows):
                copy.write_row(values)

    def write(self, rows: list[tuple]) -> None:
        try:
            with transaction.atomic(using=self.connection.alias):
                self._copy(table=self.table, rows=rows)
        except IntegrityError:
            self.inserted += self._write_skipping_stored(rows)
        else:
            self.inserted += len(rows)

    def _write_skipping_stored(self, rows: list[tuple]) -> int:
        quote = self.connection.ops.quote_name
        generation_id = quote(OpenRouterRequestCost._meta.get_field("generation_id").column)
        with self.connection.cursor() as cursor:
            if self.staging:
                cursor.execute(f"TRUNCATE {_IMPORT_TABLE}")
            else:
                definitions = ", ".join(
                    f"{quote(field.column)} {field.db_type(self.connection)}" for field in _ROW_FIELDS
                )
                # Dropped explicitly in finish(): ON COMMIT DROP alone would leave it to a second
                # import in the same outer transaction.
                cursor.execute(f"CREATE TEMPORARY TABLE {_IMPORT_TABLE} ({definitions}) ON COMMIT DROP")
                self.staging = True
        self._copy(table=_IMPORT_TABLE, rows=rows)
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {self.table} ({self.columns}) "  # noqa: S608
                f"SELECT {self.columns} FROM {_IMPORT_TABLE} "
                f"ON CONFLICT ({generation_id}) WHERE {generation_id} IS NOT NULL DO NOTHING"
            )
            return cursor.rowcount

    def finish(self) -> int:
        if self.staging:
            with self.connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE {_IMPORT_TABLE}")
        return self.inserted


class _SqliteImportWriter:
    """Insert the rows with executemany, skipping a generation_id already stored."""

    def __init__(self, *, connection: BaseDatabaseWrapper) -> None:
        self.connection = connection
        self.inserted = 0
        quote = connection.ops.quote_name
        generation_id = quote(OpenRouterRequestCost._meta.get_field("generation_id").column)
        self.sql = (
            f"INSERT INTO {quote(OpenRouterRequestCost._meta.db_table)} "  # noqa: S608
            f"({', '.join(quote(field.column) for field in _ROW_FIELDS)}) "
            f"VALUES ({', '.join(['%s'] * len(_ROW_FIELDS))}) "
            f"ON CONFLICT ({generation_id}) WHERE {generation_id} IS NOT NULL DO NOTHING"
        )

    def write(self, rows: list[tuple]) -> None:
        with self.connection.cursor() as cursor:
            cursor.executemany(self.sql, _import_values(connection=self.connection, rows=rows))
            self.inserted += cursor.rowcount

    def finish(self) -> int:
        return self.inserted


def _import_error(*, shown: list[tuple[int, dict[str, list[str]]]], invalid: int, total: int) -> ValidationError:
    errors = [
        ValidationError(
            "%(invalid)s of %(total)s rows are invalid; nothing was imported.",
            code="invalid_rows",
            params={"invalid": invalid, "total": total},
        )
    ]
    for number, row_errors in shown:
        for field, messages in _errors_ordered(row_errors).items():
            errors.extend(
                ValidationError(
                    "Row %(row)s: %(field)s: %(message)s",
                    code="invalid_row",
                    params={"row": number, "field": field, "message": message},
                )
                for message in messages
            )
    if invalid > len(shown):
        errors.append(
            ValidationError(
                "...and %(more)s more invalid rows.", code="more_invalid_rows", params={"more": invalid - len(shown)}
            )
        )
    return ValidationError(errors)


def request_costs_import(*, rows: Iterable[RequestCostInput]) -> RequestCostImportResult:
    """Store many requests at once, all or none; a generation_id stored already is skipped.

    Each row is checked as request_cost_record checks its arguments, and its user, model and
    session in a few queries per batch of rows. An invalid row raises a ValidationError naming
    it (rows are numbered from 1), and nothing is stored. The rows are written in one
    transaction: on PostgreSQL COPY, a batch of rows at a time (through a temporary table and
    INSERT ... ON CONFLICT for a batch holding a generation_id stored already); on SQLite with
    executemany. Importing the same rows again inserts nothing.
    """
    using = router.db_for_write(OpenRouterRequestCost)
    connection = connections[using]
    # Rows without a created_at are stamped with the import's start, all alike.
    now = timezone.now()
    shown: list[tuple[int, dict[str, list[str]]]] = []
    invalid = total = 0
    # A generation_id repeated in the import is written once, from its first row (as
    # request_cost_record keeps the first record); so the rows can go in in any order.
    generation_ids: set[str] = set()
    with transaction.atomic(using=using):
        references = _ImportReferences(connection=connection)
        writer = (
            _PostgresImportWriter(connection=connection)
            if connection.vendor == "postgresql"
            else _SqliteImportWriter(connection=connection)
        )
        for batch in _batched(enumerate(rows, start=1), IMPORT_BATCH_ROWS):
            total += len(batch)
            parsed: list[tuple] = []
            batch_errors: dict[int, dict[str, list[str]]] = {}
            referenced: list[tuple[int, int, int, int | None]] = []
            for number, row in batch:
                values, errors = _import_row_parse(row=row, now=now)
                if values is not None:
                    referenced.append((number, values[0], values[1], values[2]))
                    generation_id = values[3]
                    if generation_id is None or generation_id not in generation_ids:
                        parsed.append(values)
                        if generation_id is not None:
                            generation_ids.add(generation_id)
                    continue
                batch_errors[number] = errors
                if isinstance(row, RequestCostInput) and not {"user_id", "ai_model_id", "session_id"} & errors.keys():
                    # Report a wrong reference with the row's other errors, all at once.
                    referenced.append((number, row.user_id, row.ai_model_id, row.session_id))
            for number, errors in references.errors(references=referenced).items():
                batch_errors.setdefault(number, {}).update(errors)
            if batch_errors:
                invalid += len(batch_errors)
                shown.extend((number, batch_errors[number]) for number in sorted(batch_errors))
                del shown[IMPORT_ERRORS_SHOWN:]
            elif not invalid:
                writer.write(parsed)
        if invalid:
            raise _import_error(shown=shown, invalid=invalid, total=total)
        inserted = writer.finish()
    return RequestCostImportResult(inserted=inserted, skipped=total - inserted)


# Long enough for any real message, short enough that one request cannot flood the database.
CHAT_CONTENT_MAX_LENGTH = 32_000


def _conversation(*, session: ChatSession) -> list[dict[str, str]]:
    """Return the messages to send: the chatbot's system prompt, then the session's answered history."""
    messages: list[dict[str, str]] = []
    if session.chatbot.system_prompt.strip():
        messages.append({"role": ChatMessage.Role.SYSTEM, "content": session.chatbot.system_prompt})
    # A message whose turn failed never reached the model; resending it would repeat the user.
    history = session.messages.filter(failure_code="").order_by("created_at", "id").values_list("role", "content")
    messages.extend({"role": role, "content": content} for role, content in history)
    return messages


def _response_model(*, openrouter_id: str) -> AIModel:
    """Return the AIModel a response names, creating it inactive if the catalog does not list it."""
    if len(openrouter_id) > AIModel._meta.get_field("openrouter_id").max_length:
        raise OpenRouterMalformedResponse(f"The response names a model with an overlong id: {openrouter_id[:80]!r}…")
    ai_model, _ = AIModel.objects.get_or_create(
        openrouter_id=openrouter_id,
        defaults={
            "name": openrouter_id,
            "provider": openrouter_id_provider(openrouter_id=openrouter_id),
            "is_free": openrouter_id.endswith(FREE_SUFFIX),
            # Inactive until the catalog sync lists it (with its prices).
            "is_active": False,
        },
    )
    return ai_model


def _failure_record(*, message: ChatMessage, code: str, text: str) -> None:
    message.failure_code = code
    message.failure_message = text
    message.save(update_fields=["failure_code", "failure_message"])


def chat_turn_send(*, session: ChatSession, content: str, client: OpenRouterClient | None = None) -> ChatMessage:
    """Send a user's message to the session's chatbot; store and return the assistant's reply.

    The user's message is saved first, on its own, so it survives any failure. The reply and
    the request's cost are then saved together or not at all. On failure the message records
    why, and the OpenRouterError is raised with ``user_message`` set to the stored message.
    Do not call this inside a transaction: the user's message would be rolled back with it.
    """
    if not isinstance(content, str) or not content.strip():
        raise ValidationError({"content": ["Write a message."]})
    if len(content) > CHAT_CONTENT_MAX_LENGTH:
        raise ValidationError({"content": [f"A message has at most {CHAT_CONTENT_MAX_LENGTH} characters."]})
    chatbot = session.chatbot
    if not chatbot.is_active:
        raise ValidationError({"session": ["This chatbot is no longer available."]})

    user_message = ChatMessage.objects.create(session=session, role=ChatMessage.Role.USER, content=content)
    try:
        messages = _conversation(session=session)
        request = {"model": chatbot.ai_model.openrouter_id, "messages": messages, "user": str(session.user_id)}
        if client is None:
            with OpenRouterClient.from_settings() as own_client:
                completion = own_client.chat_completion(**request)
        else:
            completion = client.chat_completion(**request)
        with transaction.atomic():
            reply = ChatMessage.objects.create(
                session=session, role=ChatMessage.Role.ASSISTANT, content=completion.content, in_reply_to=user_message
            )
            cost_known = completion.cost_usd is not None
            try:
                request_cost_record(
                    user=session.user,
                    ai_model=_response_model(openrouter_id=completion.model),
                    session=session,
                    generation_id=completion.id,
                    prompt_tokens=completion.prompt_tokens or 0,
                    completion_tokens=completion.completion_tokens or 0,
                    cost_usd=completion.cost_usd if cost_known else 0,
                    cost_status=(
                        OpenRouterRequestCost.CostStatus.BILLED
                        if cost_known
                        else OpenRouterRequestCost.CostStatus.UNKNOWN
                    ),
                )
            except ValidationError as error:
                # Figures the database cannot hold exactly (e.g. a cost finer than 12 decimals).
                raise OpenRouterMalformedResponse(f"The response's usage cannot be recorded: {error}") from error
    except OpenRouterError as error:
        _failure_record(message=user_message, code=error.code, text=error.message)
        error.user_message = user_message
        raise
    except Exception as error:
        _failure_record(message=user_message, code="internal_error", text=f"{type(error).__name__}: {error}")
        raise
    return reply


@dataclass(frozen=True)
class ReconcileFailure:
    generation_id: str
    message: str


@dataclass(frozen=True)
class ReconcileResult:
    """What one reconciliation run did, by generation id."""

    reconciled: list[str]
    # OpenRouter does not know these generations yet: the next run tries again.
    pending: list[str]
    failed: list[ReconcileFailure]


@transaction.atomic
def request_cost_reconcile(*, request_cost: OpenRouterRequestCost, generation: Generation) -> OpenRouterRequestCost:
    """Fill an unknown cost in from OpenRouter's record of its generation; leave any other row as it is."""
    row = OpenRouterRequestCost.objects.select_for_update().get(pk=request_cost.pk)
    if row.cost_status != OpenRouterRequestCost.CostStatus.UNKNOWN:
        return row
    if generation.id != row.generation_id:
        raise ValidationError(
            {"generation_id": [f"OpenRouter answered for {generation.id!r}, not {row.generation_id!r}."]}
        )
    row.cost_usd = cost_parse(value=generation.total_cost)
    row.prompt_tokens = _tokens_parse(name="tokens_prompt", value=generation.tokens_prompt)
    row.completion_tokens = _tokens_parse(name="tokens_completion", value=generation.tokens_completion)
    row.total_tokens = row.prompt_tokens + row.completion_tokens
    row.cost_status = OpenRouterRequestCost.CostStatus.RECONCILED
    row.save(update_fields=["cost_usd", "prompt_tokens", "completion_tokens", "total_tokens", "cost_status"])
    return row


def request_costs_reconcile_unknown(
    *, client: OpenRouterClient, attempts: int = 3, retry_delay: float = 1.0, limit: int | None = None
) -> ReconcileResult:
    """Fetch OpenRouter's record of each unknown-cost request and fill the cost in; safe to run again.

    OpenRouter answers 404 for a second or two after a generation, so each lookup is tried up
    to ``attempts`` times, ``retry_delay`` seconds apart, before it is left for the next run.
    """
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise ValueError(f"attempts must be a positive integer, not {attempts!r}.")
    unknown = OpenRouterRequestCost.objects.filter(cost_status=OpenRouterRequestCost.CostStatus.UNKNOWN).order_by(
        "created_at", "id"
    )
    if limit is not None:
        unknown = unknown[:limit]
    reconciled: list[str] = []
    pending: list[str] = []
    failed: list[ReconcileFailure] = []
    for request_cost in list(unknown):
        generation_id = request_cost.generation_id
        for attempt in range(1, attempts + 1):
            try:
                generation = client.generation(generation_id=generation_id)
            except OpenRouterNotFound:
                if attempt == attempts:
                    pending.append(generation_id)
                else:
                    client.sleep(retry_delay)
                continue
            except (OpenRouterNotConfigured, OpenRouterAuthenticationError):
                # Every other lookup would fail the same way.
                raise
            except OpenRouterError as error:
                failed.append(ReconcileFailure(generation_id=generation_id, message=f"{error.code}: {error.message}"))
                break
            try:
                request_cost_reconcile(request_cost=request_cost, generation=generation)
            except ValidationError as error:
                failed.append(ReconcileFailure(generation_id=generation_id, message=f"invalid: {error}"))
            else:
                reconciled.append(generation_id)
            break
    return ReconcileResult(reconciled=reconciled, pending=pending, failed=failed)


@transaction.atomic
def chat_session_create(*, user: User, chatbot: Chatbot, title: str = "") -> ChatSession:
    """Start a conversation of ``user`` with an active chatbot."""
    errors: dict[str, list[str]] = {}
    if not isinstance(user, User) or user.pk is None:
        errors["user"] = ["Unknown user: it must be a saved user."]
    if not isinstance(chatbot, Chatbot) or chatbot.pk is None or not chatbot.is_active:
        errors["chatbot"] = ["The chatbot must be a saved, active chatbot."]
    title = title.strip() if isinstance(title, str) else title
    title_max_length = ChatSession._meta.get_field("title").max_length
    if not isinstance(title, str) or len(title) > title_max_length:
        errors["title"] = [f"The title must be a string of at most {title_max_length} characters."]
    if errors:
        raise ValidationError(errors)
    return ChatSession.objects.create(user=user, chatbot=chatbot, title=title)
