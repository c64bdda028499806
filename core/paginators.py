"""Pagination for tables too big to count on every page load."""

import json
from functools import cached_property

from django.core.paginator import Paginator
from django.db import connections


class EstimatedCountPaginator(Paginator):
    """Count exactly when the planner expects few rows; otherwise use PostgreSQL's estimate.

    An exact COUNT(*) over ten million request rows costs more than the page that shows them.
    Above ``exact_count_limit`` rows the page counts are the planner's estimate, so "N results"
    and the number of pages are approximate there, and exact below it. Other databases always
    count exactly.
    """

    exact_count_limit = 50_000

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        connection = connections[getattr(queryset, "db", "default")]
        if connection.vendor != "postgresql" or not hasattr(queryset, "query"):
            return super().count
        plan = json.loads(queryset.order_by().explain(format="json"))
        estimate = int(plan[0]["Plan"]["Plan Rows"])
        if estimate < self.exact_count_limit:
            return super().count
        return estimate
