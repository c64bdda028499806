"""A synthetic platform, generated day by day: users, models, chatbots, sessions, messages, requests.

Everything here is plain Python with no database: the loaders in ``bench.load`` turn the rows
into COPY text (PostgreSQL) or executemany parameters (SQLite). Rows are tuples whose fields
are named, in order, by ``TABLES``: the one place to change when the data model grows.

Shapes worth knowing when reading the benchmark's figures:

- Requests, sessions and messages are spread over ``days`` days ending at the load's ``end``
  instant, growing threefold over the year, quieter at weekends and at night (UTC).
- Users, chatbots and models are drawn with a Zipf-like skew (a few heavy users, a few
  popular models); one model in ten is free (zero prices, so zero cost).
- A session has 3 to 6 messages, alternately from the user and the assistant; each
  assistant message is one request in that session. The other requests have no session
  (API traffic), so a run of ``rows`` requests holds exactly ``rows`` requests.
- Costs are exact: integer picodollars, ``prompt_tokens * prompt_price + completion_tokens *
  completion_price``, with prices that are whole picodollars per token.
"""

import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from itertools import accumulate

# Bump when the generated data changes, so that a stored dataset of the old shape is reloaded.
GENERATOR_VERSION = 1

# The reference platform: 10M requests, 50k users, 300 models, 500 chatbots, 1M sessions.
REFERENCE_ROWS = 10_000_000
REFERENCE_USERS = 50_000
REFERENCE_MODELS = 300
REFERENCE_CHATBOTS = 500
REFERENCE_SESSIONS = 1_000_000
# Traffic (users, sessions) scales with the rows, with floors so that small datasets have some.
# The catalogue (models, chatbots) does not: a platform with less traffic offers as many models
# and chatbots, so that a page compared across sizes lists as many rows and only the traffic differs.
MIN_USERS = 50
MIN_SESSIONS = 10

DEFAULT_DAYS = 365
DEFAULT_SEED = 20_241_204

# Money is carried as integers of 10**-12 USD; the loaders scale it to each column's decimal places.
MONEY_PLACES = 12
SECONDS_PER_DAY = 86_400

BENCH_ADMIN_USERNAME = "bench-admin"

# USD per million prompt tokens, as OpenRouter lists them; completions cost 1 to 5 times more.
PROMPT_PRICES_PER_MILLION = (
    "0.02",
    "0.04",
    "0.05",
    "0.075",
    "0.1",
    "0.13",
    "0.15",
    "0.2",
    "0.25",
    "0.3",
    "0.4",
    "0.5",
    "0.6",
    "0.8",
    "1",
    "1.1",
    "1.25",
    "2",
    "2.5",
    "3",
    "5",
    "10",
    "15",
)
PROVIDERS = ("openai", "anthropic", "google", "meta-llama", "mistralai", "deepseek", "qwen", "x-ai", "cohere", "nvidia")
CONTEXT_LENGTHS = (8_192, 32_768, 65_536, 128_000, 200_000, 1_000_000)
# Relative traffic per UTC hour: quiet nights, busy afternoons.
HOUR_WEIGHTS = (2, 1.5, 1, 1, 1, 1.5, 2.5, 4, 6, 7, 7.5, 7.5, 7, 7.5, 8, 8, 7.5, 7, 6, 5.5, 5, 4.5, 3.5, 2.5)
MESSAGE_TEXTS = {
    "user": (
        "Can you summarise this article in three bullet points?",
        "What is the difference between a list and a tuple in Python?",
        "Draft a polite reply declining the meeting on Thursday.",
        "Translate the paragraph above into French, keeping the tone informal.",
        "Why does my query get slower as the table grows?",
        "Suggest five names for a small bakery.",
    ),
    "assistant": (
        "Here is a short summary: the study finds a clear effect, the sample is small, and more work is needed.",
        "A list is mutable and a tuple is not; tuples can be dictionary keys, lists cannot.",
        "Thank you for the invitation. Unfortunately I am not available on Thursday; could we find another day?",
        "Voici le paragraphe traduit, dans un ton informel comme demandé.",
        "Most likely it scans the whole table; an index on the filtered column, or a summary table, helps.",
        "Crumb & Co, The Daily Loaf, Rise and Shine, Butter Lane, Little Oven.",
    ),
}

# Column names (as in the database) of each generated row, in tuple order, with how to encode them:
# "int", "int?" (nullable), "text", "bool", "ts" (seconds after the first day's midnight, UTC) and
# "money" (integer 10**-12 USD). Columns of a model that are not listed get the field's default.
TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "accounts.User": (
        ("id", "int"),
        ("username", "text"),
        ("email", "text"),
        ("password", "text"),
        ("is_staff", "bool"),
        ("is_superuser", "bool"),
        ("is_active", "bool"),
        ("date_joined", "ts"),
    ),
    "ai_models.AIModel": (
        ("id", "int"),
        ("openrouter_id", "text"),
        ("name", "text"),
        ("provider", "text"),
        ("context_length", "int"),
        ("prompt_price", "money"),
        ("completion_price", "money"),
        ("is_free", "bool"),
        ("is_active", "bool"),
        ("created_at", "ts"),
        ("updated_at", "ts"),
    ),
    "chatbot.Chatbot": (
        ("id", "int"),
        ("name", "text"),
        ("owner_id", "int?"),
        ("ai_model_id", "int"),
        ("system_prompt", "text"),
        ("is_active", "bool"),
        ("created_at", "ts"),
    ),
    "chatbot.ChatSession": (
        ("id", "int"),
        ("user_id", "int"),
        ("chatbot_id", "int"),
        ("title", "text"),
        ("created_at", "ts"),
    ),
    "chatbot.ChatMessage": (
        ("id", "int"),
        ("session_id", "int"),
        ("role", "text"),
        ("content", "text"),
        ("created_at", "ts"),
    ),
    "chatbot.OpenRouterRequestCost": (
        ("id", "int"),
        ("user_id", "int"),
        ("session_id", "int?"),
        ("ai_model_id", "int"),
        ("generation_id", "text"),
        ("prompt_tokens", "int"),
        ("completion_tokens", "int"),
        ("total_tokens", "int"),
        ("cost_usd", "money"),
        ("created_at", "ts"),
    ),
}
CATALOG_TABLES = ("accounts.User", "ai_models.AIModel", "chatbot.Chatbot")
# In foreign-key order: a batch writes sessions before the messages and requests that point at them.
DAILY_TABLES = ("chatbot.ChatSession", "chatbot.ChatMessage", "chatbot.OpenRouterRequestCost")


@dataclass(frozen=True)
class Scale:
    """How big the synthetic platform is."""

    rows: int
    users: int
    models: int
    chatbots: int
    sessions: int
    days: int = DEFAULT_DAYS
    seed: int = DEFAULT_SEED

    def __post_init__(self) -> None:
        for name in ("rows", "users", "models", "chatbots", "sessions", "days"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}.")

    @property
    def free_models(self) -> int:
        return max(1, self.models // 10)

    def as_dict(self) -> dict[str, int]:
        """Return the scale as the metadata a stored dataset is compared by."""
        return {**asdict(self), "free_models": self.free_models, "generator_version": GENERATOR_VERSION}


def scale_for_rows(
    *,
    rows: int,
    users: int | None = None,
    models: int | None = None,
    chatbots: int | None = None,
    sessions: int | None = None,
    days: int = DEFAULT_DAYS,
    seed: int = DEFAULT_SEED,
) -> Scale:
    """Return the reference platform with its traffic scaled to ``rows`` requests, floors for small sizes."""
    factor = rows / REFERENCE_ROWS
    return Scale(
        rows=rows,
        users=users or max(MIN_USERS, round(REFERENCE_USERS * factor)),
        models=models or REFERENCE_MODELS,
        chatbots=chatbots or REFERENCE_CHATBOTS,
        sessions=sessions or max(MIN_SESSIONS, round(REFERENCE_SESSIONS * factor)),
        days=days,
        seed=seed,
    )


@dataclass
class DayBatch:
    """The sessions, messages and requests of one day, as tuples shaped by ``TABLES``."""

    day: date
    rows: dict[str, list[tuple]]


def _zipf_cum_weights(*, count: int, exponent: float, rng: random.Random) -> tuple[list[int], list[float]]:
    # Popularity ranks are shuffled, so that the heaviest user is not simply id 1.
    ranks = list(range(count))
    rng.shuffle(ranks)
    weights = [1 / (rank + 1) ** exponent for rank in ranks]
    return list(range(1, count + 1)), list(accumulate(weights))


def _cumulative_targets(*, total: int, weights: list[float]) -> list[int]:
    # Rounding the running total (not each day) makes the days add up to exactly ``total``.
    running = list(accumulate(weights))
    return [round(total * value / running[-1]) for value in running]


def _money_units(value: Decimal) -> int:
    units = value.scaleb(MONEY_PLACES)
    if units != units.to_integral_value():
        raise ValueError(f"{value} is not a whole number of 10**-{MONEY_PLACES} USD.")
    return int(units)


class PlatformGenerator:
    """Generate one synthetic platform, reproducibly from ``scale.seed``."""

    def __init__(self, *, scale: Scale, end: datetime) -> None:
        if end.tzinfo is None:
            raise ValueError("end must be an aware datetime.")
        self.scale = scale
        self.end = end.astimezone(UTC).replace(microsecond=0)
        self.first_day = self.end.date() - timedelta(days=scale.days - 1)
        self.start = datetime.combine(self.first_day, time.min, tzinfo=UTC)
        self.rng = random.Random(scale.seed)
        rng = self.rng
        self.user_ids, self.user_weights = _zipf_cum_weights(count=scale.users, exponent=1.0, rng=rng)
        self.model_ids, self.model_weights = _zipf_cum_weights(count=scale.models, exponent=1.1, rng=rng)
        self.chatbot_ids, self.chatbot_weights = _zipf_cum_weights(count=scale.chatbots, exponent=1.0, rng=rng)
        self.prompt_units: dict[int, int] = {}
        self.completion_units: dict[int, int] = {}
        self.free_model_ids: set[int] = set()
        self.chatbot_model: dict[int, int] = {}
        # A pool of (prompt, completion) token counts, log-normal like real traffic, drawn from cheaply.
        self.token_pool = [
            (
                min(32_000, max(1, int(rng.lognormvariate(6.3, 1.1)))),
                min(8_000, max(1, int(rng.lognormvariate(5.3, 0.9)))),
            )
            for _ in range(1 << 16)
        ]

    @property
    def last_second(self) -> int:
        """Return the latest timestamp generated, in seconds after the first day's midnight."""
        return int((self.end - self.start).total_seconds())

    def catalog(self) -> dict[str, list[tuple]]:
        """Return the users (and a superuser to measure with), the AI models and the chatbots."""
        rng = self.rng
        scale = self.scale
        users = [
            (user_id, f"user{user_id:06d}", f"user{user_id:06d}@example.com", "!", False, False, True, 0)
            for user_id in self.user_ids
        ]
        users.append(
            (scale.users + 1, BENCH_ADMIN_USERNAME, "bench-admin@example.com", "!", True, True, True, 0),
        )

        # Free models are spread over the popularity ranks, from the second busiest down.
        weights = [b - a for a, b in zip([0.0, *self.model_weights], self.model_weights, strict=False)]
        popularity = sorted(self.model_ids, key=lambda model_id: -weights[model_id - 1])
        free_ranks = {1 + k * scale.models // scale.free_models for k in range(scale.free_models)}
        self.free_model_ids = {popularity[rank] for rank in free_ranks}
        models = []
        for model_id in self.model_ids:
            provider = PROVIDERS[model_id % len(PROVIDERS)]
            is_free = model_id in self.free_model_ids
            if is_free:
                prompt = completion = 0
            else:
                per_million = Decimal(rng.choice(PROMPT_PRICES_PER_MILLION))
                prompt = _money_units(per_million.scaleb(-6))
                completion = prompt * rng.randint(1, 5)
            self.prompt_units[model_id] = prompt
            self.completion_units[model_id] = completion
            suffix = ":free" if is_free else ""
            models.append(
                (
                    model_id,
                    f"{provider}/model-{model_id:03d}{suffix}",
                    f"{provider.title()} Model {model_id}{' (free)' if is_free else ''}",
                    provider,
                    rng.choice(CONTEXT_LENGTHS),
                    prompt,
                    completion,
                    is_free,
                    True,
                    0,
                    0,
                )
            )

        owners = rng.choices(self.user_ids, cum_weights=self.user_weights, k=scale.chatbots)
        bot_models = rng.choices(self.model_ids, cum_weights=self.model_weights, k=scale.chatbots)
        chatbots = []
        for chatbot_id, owner, model_id in zip(self.chatbot_ids, owners, bot_models, strict=True):
            self.chatbot_model[chatbot_id] = model_id
            chatbots.append(
                (
                    chatbot_id,
                    f"Chatbot {chatbot_id:03d}",
                    owner if chatbot_id % 5 else None,
                    model_id,
                    "You are a helpful assistant.",
                    True,
                    0,
                )
            )
        return {"accounts.User": users, "ai_models.AIModel": models, "chatbot.Chatbot": chatbots}

    def days(self) -> Iterator[DayBatch]:
        """Yield each day's sessions, messages and requests, requests in time order; call catalog() first."""
        if not self.prompt_units:
            raise RuntimeError("Call catalog() before days(): requests are priced from the models.")
        rng = self.rng
        scale = self.scale
        day_weights = []
        for offset in range(scale.days):
            day = self.first_day + timedelta(days=offset)
            growth = 1 + 2 * offset / max(1, scale.days - 1)
            day_weights.append(growth * (0.7 if day.weekday() >= 5 else 1.0))
        # The last day is cut at ``end``: weigh it by the share of its traffic already past.
        end_second_of_day = self.last_second % SECONDS_PER_DAY
        hour_cum = list(accumulate(HOUR_WEIGHTS))
        elapsed_hours = end_second_of_day / 3600
        whole = int(elapsed_hours)
        partial_weight = sum(HOUR_WEIGHTS[:whole]) + (
            HOUR_WEIGHTS[whole] * (elapsed_hours - whole) if whole < 24 else 0
        )
        day_weights[-1] *= partial_weight / hour_cum[-1]
        session_targets = _cumulative_targets(total=scale.sessions, weights=day_weights)
        request_targets = _cumulative_targets(total=scale.rows, weights=day_weights)

        hours = list(range(24))
        user_texts = MESSAGE_TEXTS["user"]
        assistant_texts = MESSAGE_TEXTS["assistant"]
        token_pool = self.token_pool
        prompt_units = self.prompt_units
        completion_units = self.completion_units
        randrange = rng.randrange
        getrandbits = rng.getrandbits
        session_id = message_id = request_id = 0
        produced = 0
        for offset in range(scale.days):
            day_start = offset * SECONDS_PER_DAY
            last = SECONDS_PER_DAY - 1 if offset < scale.days - 1 else end_second_of_day

            def seconds_of_day(count: int, last: int = last) -> list[int]:
                picked = [hour * 3600 + randrange(3600) for hour in rng.choices(hours, cum_weights=hour_cum, k=count)]
                if last < SECONDS_PER_DAY - 1:
                    picked = [second * last // (SECONDS_PER_DAY - 1) for second in picked]
                return picked

            session_count = session_targets[offset] - (session_targets[offset - 1] if offset else 0)
            session_users = rng.choices(self.user_ids, cum_weights=self.user_weights, k=session_count)
            session_bots = rng.choices(self.chatbot_ids, cum_weights=self.chatbot_weights, k=session_count)
            sessions, messages, pending = [], [], []
            for second, user_id, chatbot_id in zip(
                sorted(seconds_of_day(session_count)), session_users, session_bots, strict=True
            ):
                session_id += 1
                sessions.append((session_id, user_id, chatbot_id, f"Chat {session_id}", day_start + second))
                for index in range(rng.randint(3, 6)):
                    message_id += 1
                    at = day_start + min(last, second + 40 * index + randrange(30))
                    if index % 2 == 0:
                        messages.append((message_id, session_id, "user", user_texts[message_id % 6], at))
                    else:
                        messages.append((message_id, session_id, "assistant", assistant_texts[message_id % 6], at))
                        # Each reply is one request; past ``rows`` requests, replies go unbilled.
                        if produced < scale.rows:
                            produced += 1
                            pending.append((at, user_id, session_id, chatbot_id))

            # Most replies use the chatbot's model; a fifth switch to another (Zipf-drawn) model.
            switched = rng.choices(self.model_ids, cum_weights=self.model_weights, k=len(pending))
            day_requests = [
                (at, user_id, sid, self.chatbot_model[chatbot_id] if rng.random() < 0.8 else other)
                for (at, user_id, sid, chatbot_id), other in zip(pending, switched, strict=True)
            ]
            api_count = max(0, request_targets[offset] - produced)
            produced += api_count
            day_requests.extend(
                zip(
                    [day_start + second for second in seconds_of_day(api_count)],
                    rng.choices(self.user_ids, cum_weights=self.user_weights, k=api_count),
                    [None] * api_count,
                    rng.choices(self.model_ids, cum_weights=self.model_weights, k=api_count),
                    strict=True,
                )
            )
            day_requests.sort(key=lambda request: request[0])
            requests = []
            for at, user_id, sid, model_id in day_requests:
                request_id += 1
                prompt, completion = token_pool[getrandbits(16)]
                requests.append(
                    (
                        request_id,
                        user_id,
                        sid,
                        model_id,
                        f"gen-{request_id:010d}",
                        prompt,
                        completion,
                        prompt + completion,
                        prompt * prompt_units[model_id] + completion * completion_units[model_id],
                        at,
                    )
                )
            yield DayBatch(
                day=self.first_day + timedelta(days=offset),
                rows={
                    "chatbot.ChatSession": sessions,
                    "chatbot.ChatMessage": messages,
                    "chatbot.OpenRouterRequestCost": requests,
                },
            )
