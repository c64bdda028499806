"""Send report reads to a read replica when REPORTS_DATABASE_URL names one."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from django.conf import settings

_reading_reports: ContextVar[bool] = ContextVar("reading_reports", default=False)

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def report_reads() -> Iterator[None]:
    """Route the ORM reads made inside the block to the reports database."""
    token = _reading_reports.set(True)
    try:
        yield
    finally:
        _reading_reports.reset(token)


def reads_reports_database(function: Callable[P, R]) -> Callable[P, R]:
    """Decorate a selector so that its queries read the reports database."""

    @wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with report_reads():
            return function(*args, **kwargs)

    return wrapper


class ReportsReplicaRouter:
    """Route the reads of report selectors to settings.REPORTS_DATABASE_ALIAS; everything else is untouched.

    Only the selectors are routed, not every read: the admin's own pages keep reading the
    primary, so an operator who just saved a row sees it, whatever the replica's lag.
    """

    def db_for_read(self, model: type, **hints: Any) -> str | None:
        if _reading_reports.get():
            return settings.REPORTS_DATABASE_ALIAS
        return None

    def db_for_write(self, model: type, **hints: Any) -> str | None:
        return None

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        # The replica holds the same rows as the primary: objects read from either relate.
        return True

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        # A replica receives its schema by replication, never by migrate.
        if db != "default" and db == settings.REPORTS_DATABASE_ALIAS:
            return False
        return None
