"""Rollup tables: per-day (and per-user all-time) sums the reports read instead of the raw rows.

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

    # False on a delta appended by a trigger; True on a row written by a squash or a rebuild.
    is_squashed = models.BooleanField(db_default=False, default=False)

    class Meta:
        abstract = True


class DailyRollupRow(RollupRow):
    """A rollup row of one day."""

    day = models.DateField(help_text="Local day (settings.TIME_ZONE) of the rows summed.")

    class Meta:
        abstract = True


class RequestSums(models.Model):
    """The measures summed from requests: how many, their tokens, their cost."""

    request_count = models.BigIntegerField()
    total_tokens = models.BigIntegerField()
    total_cost_usd = ExactDecimalField(max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES)

    class Meta:
        abstract = True


class ChatbotSums(models.Model):
    """The measures summed per chatbot: its sessions, their messages and requests, what they cost."""

    session_count = models.BigIntegerField()
    message_count = models.BigIntegerField()
    request_count = models.BigIntegerField()
    free_request_count = models.BigIntegerField()
    total_cost_usd = ExactDecimalField(max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES)

    class Meta:
        abstract = True


class UserDailyUsage(DailyRollupRow, RequestSums):
    """Requests, tokens and cost of one user on one day, free and paid models apart."""

    user = _entity(settings.AUTH_USER_MODEL)
    # The model's current AIModel.is_free: a change of it moves the model's requests (a trigger).
    is_free = models.BooleanField()

    class Meta:
        verbose_name = "user daily usage"
        verbose_name_plural = "user daily usage"
        indexes = [
            models.Index(fields=["day", "user", "is_free"], name="rollup_user_day_idx"),
            # The exact period figures of a few candidate users (reports.selectors' top-user pruning):
            # on PostgreSQL read from the index alone, not from rows scattered over the table.
            models.Index(
                fields=["user", "day"],
                include=["is_free", "request_count", "total_tokens", "total_cost_usd"],
                name="rollup_user_user_day_idx",
            ),
            models.Index(fields=["id"], condition=Q(is_squashed=False), name="rollup_user_delta_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.day} user {self.user_id} ({'free' if self.is_free else 'paid'}): {self.request_count} requests"


class UserTotalUsage(RollupRow, RequestSums):
    """One user's requests, tokens and cost over all time, and the part of them on free models.

    The per-user rollup without days: the all-time user reports read it instead of a row per
    user per day, and its squashed rows, one per user, ordered by cost or free tokens, bound any
    period's figures from above (see reports.selectors).
    """

    user = _entity(settings.AUTH_USER_MODEL)
    # As the free bucket of UserDailyUsage: requests to models whose is_free is now true.
    free_request_count = models.BigIntegerField()
    free_total_tokens = models.BigIntegerField()

    class Meta:
        verbose_name = "user total usage"
        verbose_name_plural = "user total usage"
        indexes = [
            models.Index(fields=["user"], name="rollup_user_total_user_idx"),
            # Squashed rows in the order the pruning walks them; deltas are read apart, by user.
            models.Index(
                fields=["-total_cost_usd", "user"], condition=Q(is_squashed=True), name="rollup_user_total_cost_idx"
            ),
            models.Index(
                fields=["-free_total_tokens", "user"],
                condition=Q(is_squashed=True),
                name="rollup_user_total_free_idx",
            ),
            models.Index(fields=["id"], condition=Q(is_squashed=False), name="rollup_user_total_delta_idx"),
        ]

    def __str__(self) -> str:
        return f"user {self.user_id}: {self.request_count} requests"


class ModelDailyUsage(DailyRollupRow, RequestSums):
    """Requests, tokens and cost of one AI model on one day."""

    ai_model = _entity("ai_models.AIModel")

    class Meta:
        verbose_name = "model daily usage"
        verbose_name_plural = "model daily usage"
        indexes = [
            models.Index(fields=["day", "ai_model"], name="rollup_model_day_idx"),
            models.Index(fields=["id"], condition=Q(is_squashed=False), name="rollup_model_delta_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.day} model {self.ai_model_id}: {self.request_count} requests"


class ChatbotDailyUsage(DailyRollupRow, ChatbotSums):
    """One chatbot's sessions, messages and requests on one day.

    Sessions count on their own created_at day, messages and requests on theirs, each
    attributed to the chatbot of its session; a request without a session is not here.
    """

    chatbot = _entity("chatbot.Chatbot")

    class Meta:
        verbose_name = "chatbot daily usage"
        verbose_name_plural = "chatbot daily usage"
        indexes = [
            models.Index(fields=["day", "chatbot"], name="rollup_chatbot_day_idx"),
            models.Index(fields=["id"], condition=Q(is_squashed=False), name="rollup_chatbot_delta_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.day} chatbot {self.chatbot_id}: {self.session_count} sessions, {self.request_count} requests"


class ModelTotalUsage(RollupRow, RequestSums):
    """Requests, tokens and cost of one AI model over all time: the all-time model reports read it."""

    ai_model = _entity("ai_models.AIModel")

    class Meta:
        verbose_name = "model total usage"
        verbose_name_plural = "model total usage"
        indexes = [
            models.Index(fields=["ai_model"], name="rollup_model_total_model_idx"),
            models.Index(fields=["id"], condition=Q(is_squashed=False), name="rollup_model_total_delta_idx"),
        ]

    def __str__(self) -> str:
        return f"model {self.ai_model_id}: {self.request_count} requests"


class ChatbotTotalUsage(RollupRow, ChatbotSums):
    """One chatbot's sessions, messages and requests over all time, as ChatbotDailyUsage sums them per day."""

    chatbot = _entity("chatbot.Chatbot")

    class Meta:
        verbose_name = "chatbot total usage"
        verbose_name_plural = "chatbot total usage"
        indexes = [
            models.Index(fields=["chatbot"], name="rollup_chatbot_total_bot_idx"),
            models.Index(fields=["id"], condition=Q(is_squashed=False), name="rollup_chatbot_total_delta_idx"),
        ]

    def __str__(self) -> str:
        return f"chatbot {self.chatbot_id}: {self.session_count} sessions, {self.request_count} requests"


class PlatformDailyUsage(DailyRollupRow, RequestSums):
    """Requests, tokens and cost of the whole platform on one day, free and paid models apart.

    Two rows a day, whatever the number of users and models: the headline figures, the daily
    chart and the average tokens per request read it.
    """

    # The model's current AIModel.is_free, as in UserDailyUsage.
    is_free = models.BooleanField()

    class Meta:
        verbose_name = "platform daily usage"
        verbose_name_plural = "platform daily usage"
        indexes = [
            models.Index(fields=["day", "is_free"], name="rollup_platform_day_idx"),
            models.Index(fields=["id"], condition=Q(is_squashed=False), name="rollup_platform_delta_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.day} ({'free' if self.is_free else 'paid'}): {self.request_count} requests"


MONTHS = range(1, 13)


def _month_days(month: int) -> models.BigIntegerField:
    return models.BigIntegerField(
        db_default=0, default=0, help_text=f"Bit d-1 set: the user made requests on day d of month {month}."
    )


def _month_counted(month: int) -> models.BigIntegerField:
    return models.BigIntegerField(
        db_default=0, default=0, help_text=f"Bit d-1 set: ActiveUserHistogram counts day d of month {month}."
    )


class UserYearlyActivity(models.Model):
    """The days of one local year on which one user made requests, as one bitmask per month.

    Not a sum like the other rollups: bit ``d - 1`` of ``days_MM`` is set when the user has
    requests on day ``d`` of month ``MM``, so counting the users active in a period within a year
    reads one row per user, with no grouping. Inserting a request sets its bit (a write only on
    a user's first request of the day). Deleting one (or moving it to another user or day) cannot
    clear its bit without knowing the day's other requests, so it marks the row inexact instead:
    readers check the users of inexact rows against UserDailyUsage, and ``rebuild_rollups``
    recomputes those rows and makes them exact again.

    ``counted_MM`` are the days ActiveUserHistogram counts for the row; ``is_counted`` says they
    equal ``days_MM``. A trigger that sets a bit clears it, and the squash counts the row anew.
    """

    user = _entity(settings.AUTH_USER_MODEL)
    year = models.IntegerField(help_text="Local year (settings.TIME_ZONE).")
    days_01 = _month_days(1)
    days_02 = _month_days(2)
    days_03 = _month_days(3)
    days_04 = _month_days(4)
    days_05 = _month_days(5)
    days_06 = _month_days(6)
    days_07 = _month_days(7)
    days_08 = _month_days(8)
    days_09 = _month_days(9)
    days_10 = _month_days(10)
    days_11 = _month_days(11)
    days_12 = _month_days(12)
    is_exact = models.BooleanField(db_default=True, default=True)
    counted_01 = _month_counted(1)
    counted_02 = _month_counted(2)
    counted_03 = _month_counted(3)
    counted_04 = _month_counted(4)
    counted_05 = _month_counted(5)
    counted_06 = _month_counted(6)
    counted_07 = _month_counted(7)
    counted_08 = _month_counted(8)
    counted_09 = _month_counted(9)
    counted_10 = _month_counted(10)
    counted_11 = _month_counted(11)
    counted_12 = _month_counted(12)
    is_counted = models.BooleanField(db_default=False, default=False)

    class Meta:
        verbose_name = "user yearly activity"
        verbose_name_plural = "user yearly activity"
        constraints = [models.UniqueConstraint(fields=["user", "year"], name="rollup_activity_user_year_uniq")]
        indexes = [
            # Covers the active-users count on PostgreSQL: the year's exact rows and their days.
            models.Index(
                fields=["year", "is_exact"],
                include=["user", *(f"days_{month:02}" for month in MONTHS)],
                name="rollup_activity_year_idx",
            ),
            # The rows whose days the histogram does not count as they are: few, between two squashes.
            models.Index(
                fields=["year"],
                condition=Q(is_counted=False) | Q(is_exact=False),
                name="rollup_activity_uncounted_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"user {self.user_id} in {self.year}"


class ActiveUserHistogram(models.Model):
    """How many users were active on a day of a year, by the day of that year they were active before.

    Counting the users active between two days of one year reads this table's rows of those
    days instead of a row per user: a user active in the range is counted once, on their first
    active day in it, the one whose previous active day comes before the range. Days are numbered
    ``month * 100 + day of month`` (1105 for 5 November), in date order within a year; a
    ``previous_day`` of 0 means none that year.

    It counts the ``counted_MM`` days of every UserYearlyActivity row. The squash brings it up to
    date (``reports.rollups``), so writers never touch it; until then, readers correct it with the
    few rows not counted as they are.
    """

    year = models.IntegerField(help_text="Local year (settings.TIME_ZONE).")
    day = models.IntegerField(help_text="month * 100 + day of month.")
    previous_day = models.IntegerField(help_text="The users' previous active day that year, as day; 0 for none.")
    user_count = models.BigIntegerField()

    class Meta:
        verbose_name = "active user histogram"
        verbose_name_plural = "active user histogram"
        constraints = [
            models.UniqueConstraint(fields=["year", "day", "previous_day"], name="rollup_histogram_day_uniq"),
        ]
        # The rows the squash just emptied, which it deletes: without a scan of the whole table.
        indexes = [models.Index(fields=["year"], condition=Q(user_count=0), name="rollup_histogram_empty_idx")]

    def __str__(self) -> str:
        return f"{self.year}-{self.day}: {self.user_count} users active before on {self.previous_day}"
