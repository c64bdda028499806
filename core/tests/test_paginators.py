"""Counting big tables: exact when small, the planner's estimate when large (PostgreSQL)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chatbot.models import OpenRouterRequestCost
from core.factories import RequestCostFactory
from core.paginators import EstimatedCountPaginator

pytestmark = pytest.mark.django_db


def test_small_results_are_counted_exactly():
    RequestCostFactory.create_batch(7)
    paginator = EstimatedCountPaginator(OpenRouterRequestCost.objects.order_by("-id"), per_page=5)
    assert paginator.count == 7
    assert paginator.num_pages == 2


@pytest.mark.skipif(connection.vendor != "postgresql", reason="only PostgreSQL's planner gives estimates")
def test_large_results_use_the_planners_estimate(monkeypatch):
    RequestCostFactory.create_batch(30)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {OpenRouterRequestCost._meta.db_table}")
    monkeypatch.setattr(EstimatedCountPaginator, "exact_count_limit", 10)
    queries = []
    with connection.execute_wrapper(lambda execute, sql, *args: queries.append(sql) or execute(sql, *args)):
        count = EstimatedCountPaginator(OpenRouterRequestCost.objects.order_by("-id"), per_page=5).count

    # The count stopped at 11 rows; after ANALYZE the planner knows the table holds 30.
    assert count == 30
    assert len(queries) == 2
    assert "LIMIT 11" in queries[0]
    assert queries[1].startswith("EXPLAIN")


def test_the_count_stops_at_the_limit_on_every_database(monkeypatch):
    RequestCostFactory.create_batch(4)
    monkeypatch.setattr(EstimatedCountPaginator, "exact_count_limit", 4)
    assert EstimatedCountPaginator(OpenRouterRequestCost.objects.order_by("-id"), per_page=2).count == 4


def test_a_known_count_is_taken_as_it_is_without_a_query():
    RequestCostFactory.create_batch(3)
    paginator = EstimatedCountPaginator(OpenRouterRequestCost.objects.order_by("-id"), per_page=2, known_count=3)

    with CaptureQueriesContext(connection) as queries:
        assert (paginator.count, paginator.num_pages) == (3, 2)

    assert queries.captured_queries == []
