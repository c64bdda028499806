"""Adapt HTTP requests to the report layer: which period a request asks for."""

from django.http import HttpRequest

from reports.periods import PERIOD_PARAMS, Period, period_from_params


def period_from_request(*, request: HttpRequest) -> Period:
    """Return the period selected by the request's query string; raise PeriodError when it is invalid."""
    return period_from_params(params={name: request.GET.get(name, "") for name in PERIOD_PARAMS})
