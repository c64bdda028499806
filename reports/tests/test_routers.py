"""The optional read replica: report selectors read it, everything else stays on the primary."""

from decimal import Decimal

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from core.factories import AIModelFactory, RequestCostFactory, UserFactory
from reports import selectors
from reports.routers import ReportsReplicaRouter

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "reports"])


@pytest.fixture
def replica(settings):
    settings.REPORTS_DATABASE_ALIAS = "reports"


def test_report_selectors_read_the_replica_alias(replica):
    user = UserFactory(username="ann")
    model = AIModelFactory()
    RequestCostFactory(user=user, ai_model=model, prompt_tokens=10, completion_tokens=5, cost_usd=Decimal("0.25"))
    RequestCostFactory(user=user, ai_model=model, prompt_tokens=1, completion_tokens=2, cost_usd=Decimal("0.5"))

    with (
        CaptureQueriesContext(connections["default"]) as primary,
        CaptureQueriesContext(connections["reports"]) as reports,
    ):
        rows = selectors.top_users_by_cost()
        headline = selectors.usage_headline()

    # 0.25 + 0.5 USD and 15 + 3 tokens over 2 requests, read through the replica's connection.
    assert [(row.username, row.total_cost_usd, row.total_tokens, row.request_count) for row in rows] == [
        ("ann", Decimal("0.75"), 18, 2)
    ]
    assert headline.request_count == 2
    # Two queries for the top users (the pruning's bound, then the rows), two for the headline
    # (totals, then active users).
    assert len(reports.captured_queries) == 4
    assert primary.captured_queries == []


def test_other_reads_and_all_writes_stay_on_the_primary(replica):
    with (
        CaptureQueriesContext(connections["default"]) as primary,
        CaptureQueriesContext(connections["reports"]) as reports,
    ):
        user = UserFactory(username="bob")
        assert User.objects.get(pk=user.pk).username == "bob"

    assert reports.captured_queries == []
    assert len(primary.captured_queries) >= 2


def test_without_a_replica_reports_read_the_primary():
    UserFactory()
    with CaptureQueriesContext(connections["reports"]) as reports:
        selectors.top_users_by_cost()
    assert reports.captured_queries == []


def test_the_replica_is_never_migrated(replica):
    router = ReportsReplicaRouter()
    assert router.allow_migrate("reports", "chatbot") is False
    assert router.allow_migrate("default", "chatbot") is None
