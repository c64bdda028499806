"""Rollup tables: per-day sums the reports read instead of the raw request, session and message rows.

The tables are maintained by database triggers (``reports.rollups``), in the same transaction
as every write to the raw tables, so they are exact at every moment. Writers only append delta
rows (no unique key, so concurrent writers never wait on one hot row); ``squash_rollups``
merges the rows of each key from time to time, and readers always ``GROUP BY`` the key, so a
squashed row plus any fresh deltas sum to the same figure. ``day`` is the local date of the
underlying row's ``created_at`` in ``settings.TIME_ZONE``.

The id columns are foreign keys without a database constraint and with ``DO_NOTHING``: a
rollup row never blocks deleting a user, model or chatbot (their rows are decremented by the
triggers when the raw rows go), and readers join the entity, so a deleted one drops out.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from core.fields import ExactDecimalField

# Sums of request costs (12 decimal places, as cost_usd): up to 10**12 USD on PostgreSQL; on
# SQLite the scaled 64-bit integer storage holds sums up to about 9.2 million USD.
MONEY_MAX_DIGITS = 24
MONEY_DECIMAL_PLACES = 12


def _entity(to: str) -> models.ForeignKey:
    return models.ForeignKey(to, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+")


class RollupRow(models.Model):
    """Columns every rollup table shares."""

    day = models.DateField(help_text="Local day (settings.TIME_ZONE) of the rows summed.")
    # False on a delta appended by a trigger; True on a row written by a squash or a rebuild.
    is_squashed = models.BooleanField(db_default=False, default=False)

    class Meta:
        abstract = True


class UserDailyUsage(RollupRow):
    """Requests, tokens and cost of one user on one day, free and paid models apart."""

    user = _entity(settings.AUTH_USER_MODEL)
    # The model's current AIModel.is_free: a change of it moves the model's requests (a trigger).
    is_free = models.BooleanField()
    request_count = models.BigIntegerField()
    total_tokens = models.BigIntegerField()
    total_cost_usd = ExactDecimalField(max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES)

    class Meta:
        verbose_name = "user daily usage"
        verbose_name_plural = "user daily usage"
        indexes = [
            models.Index(fields=["day", "user", "is_free"], name="rollup_user_day_idx"),
            models.Index(fields=["id"], condition=Q(is_squashed=False), name="rollup_user_delta_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.day} user {self.user_id} ({'free' if self.is_free else 'paid'}): {self.request_count} requests"


class ModelDailyUsage(RollupRow):
    """Requests, tokens and cost of one AI model on one day."""

    ai_model = _entity("ai_models.AIModel")
    request_count = models.BigIntegerField()
    total_tokens = models.BigIntegerField()
    total_cost_usd = ExactDecimalField(max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES)

    class Meta:
        verbose_name = "model daily usage"
        verbose_name_plural = "model daily usage"
        indexes = [
            models.Index(fields=["day", "ai_model"], name="rollup_model_day_idx"),
            models.Index(fields=["id"], condition=Q(is_squashed=False), name="rollup_model_delta_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.day} model {self.ai_model_id}: {self.request_count} requests"


class ChatbotDailyUsage(RollupRow):
    """One chatbot's sessions, messages and requests on one day.

    Sessions count on their own created_at day, messages and requests on theirs, each
    attributed to the chatbot of its session; a request without a session is not here.
    """

    chatbot = _entity("chatbot.Chatbot")
    session_count = models.BigIntegerField()
    message_count = models.BigIntegerField()
    request_count = models.BigIntegerField()
    free_request_count = models.BigIntegerField()
    total_cost_usd = ExactDecimalField(max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES)

    class Meta:
        verbose_name = "chatbot daily usage"
        verbose_name_plural = "chatbot daily usage"
        indexes = [
            models.Index(fields=["day", "chatbot"], name="rollup_chatbot_day_idx"),
            models.Index(fields=["id"], condition=Q(is_squashed=False), name="rollup_chatbot_delta_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.day} chatbot {self.chatbot_id}: {self.session_count} sessions, {self.request_count} requests"
