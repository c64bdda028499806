"""Demo data: a believable platform to try the usage reports on (``manage.py seed_demo``).

Everything is drawn from one ``random.Random(seed)``, so a seed always builds the same
platform (dates are relative to ``now``). Users, models and chatbots are looked up by their
natural keys and only created when missing; sessions, messages and request costs are only
written when no demo request exists yet, so a second run adds nothing.
"""

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from ai_models.models import AIModel
from ai_models.services import CatalogEntry, catalog_load_file, catalog_parse
from chatbot.models import Chatbot, ChatMessage, ChatSession, OpenRouterRequestCost
from chatbot.services import COST_DECIMAL_PLACES, request_cost_record

DEMO_CATALOG_PATH = Path(settings.BASE_DIR) / "ai_models" / "data" / "demo_catalog.json"
DEMO_GENERATION_PREFIX = "gen-demo-"
DEMO_DAYS = 90
DEMO_SESSION_COUNT = 500
DEFAULT_SEED = 20260814

COST_QUANTUM = Decimal(1).scaleb(-COST_DECIMAL_PLACES)


@dataclass(frozen=True)
class DemoChatbot:
    """One demo chatbot and how its conversations look."""

    name: str
    openrouter_id: str
    owner: str | None
    weight: int
    system_prompt: str
    # Tokens of one user message, and of one reply: (low, high).
    user_tokens: tuple[int, int]
    reply_tokens: tuple[int, int]
    openers: tuple[str, ...]
    replies: tuple[str, ...]


@dataclass(frozen=True)
class DemoTurn:
    """One exchange of a demo conversation: the user's message and the reply it cost."""

    question: str
    question_tokens: int
    asked_at: datetime
    reply: str
    reply_tokens: int
    replied_at: datetime


@dataclass(frozen=True)
class DemoSeedResult:
    """What one seeding run created (all zero when the demo data was already there)."""

    created: bool
    users: int = 0
    ai_models: int = 0
    chatbots: int = 0
    sessions: int = 0
    messages: int = 0
    requests: int = 0
    total_cost_usd: Decimal = Decimal(0)


# (username, first name, last name)
DEMO_USERS: tuple[tuple[str, str, str], ...] = (
    ("amelia.chen", "Amelia", "Chen"),
    ("jpatel", "Jai", "Patel"),
    ("sofia.rossi", "Sofia", "Rossi"),
    ("mkowalski", "Marek", "Kowalski"),
    ("noah.williams", "Noah", "Williams"),
    ("emma.dubois", "Emma", "Dubois"),
    ("oliver.k", "Oliver", "Kaufmann"),
    ("ava.nguyen", "Ava", "Nguyen"),
    ("liam.obrien", "Liam", "O'Brien"),
    ("mia.schmidt", "Mia", "Schmidt"),
    ("ethan.j", "Ethan", "Johnson"),
    ("isabella.garcia", "Isabella", "Garcia"),
    ("yuki.tanaka", "Yuki", "Tanaka"),
    ("fatima.ali", "Fatima", "Ali"),
    ("daniel.kim", "Daniel", "Kim"),
    ("chloe.martin", "Chloé", "Martin"),
    ("arjun.rao", "Arjun", "Rao"),
    ("grace.lee", "Grace", "Lee"),
    ("mateo.fernandez", "Mateo", "Fernández"),
    ("hannah.becker", "Hannah", "Becker"),
    ("samuel.okafor", "Samuel", "Okafor"),
    ("lea.moreau", "Léa", "Moreau"),
    ("omar.haddad", "Omar", "Haddad"),
    ("zoe.anderson", "Zoe", "Anderson"),
    ("lucas.silva", "Lucas", "Silva"),
    ("nina.petrova", "Nina", "Petrova"),
    ("ben.carter", "Ben", "Carter"),
    ("aisha.bello", "Aisha", "Bello"),
    ("tom.hughes", "Tom", "Hughes"),
    ("ingrid.larsen", "Ingrid", "Larsen"),
    ("diego.ramirez", "Diego", "Ramírez"),
    ("sara.cohen", "Sara", "Cohen"),
    ("kenji.sato", "Kenji", "Sato"),
    ("priya.shah", "Priya", "Shah"),
    ("max.mueller", "Max", "Müller"),
    ("elena.popescu", "Elena", "Popescu"),
)

# Users at the end of the activity ranking signed up but never chatted: real platforms have them.
DEMO_IDLE_USERS = 3

DEMO_CHATBOTS: tuple[DemoChatbot, ...] = (
    DemoChatbot(
        name="Support Assistant",
        openrouter_id="openai/gpt-5.4-mini",
        owner="amelia.chen",
        weight=20,
        system_prompt=(
            "You are the support assistant of our platform. Answer questions about accounts, billing "
            "and features briefly and politely. If you are not sure, say so and offer to open a ticket."
        ),
        user_tokens=(20, 160),
        reply_tokens=(80, 400),
        openers=(
            "How do I reset my password?",
            "Why was I charged twice this month?",
            "Can I export my conversation history?",
            "How do I invite a teammate to my workspace?",
            "The app says my session expired, what should I do?",
        ),
        replies=(
            "Here is how to do that, step by step.",
            "Sorry about the trouble. Let me walk you through it.",
            "Good question: this is set in your account settings.",
        ),
    ),
    DemoChatbot(
        name="Code Reviewer",
        openrouter_id="anthropic/claude-sonnet-4.6",
        owner="jpatel",
        weight=14,
        system_prompt=(
            "You are a senior software engineer reviewing code. Point out bugs, security issues and "
            "unclear names first, then style. Quote the lines you comment on and suggest a fix."
        ),
        user_tokens=(600, 4000),
        reply_tokens=(300, 1500),
        openers=(
            "Please review this Django view, I think it has an N+1 query.",
            "Can you check this SQL migration before I run it in production?",
            "Review my React hook for race conditions.",
            "Is this retry loop safe? It calls a payment API.",
            "What would you change in this Go HTTP handler?",
        ),
        replies=(
            "Overall this is solid; three things stand out.",
            "There is a bug on the line that builds the query set.",
            "The logic is correct, but the error handling swallows failures.",
        ),
    ),
    DemoChatbot(
        name="Study Buddy",
        openrouter_id="openai/gpt-oss-20b:free",
        owner=None,
        weight=12,
        system_prompt=(
            "You are a patient tutor for students. Explain step by step, check understanding with a "
            "short question, and never just hand over the answer to homework."
        ),
        user_tokens=(30, 250),
        reply_tokens=(150, 700),
        openers=(
            "Can you explain how photosynthesis works?",
            "I don't get derivatives, can you help?",
            "What caused the First World War?",
            "How do I balance this chemical equation?",
            "Quiz me on Spanish irregular verbs.",
        ),
        replies=(
            "Let's break it into small steps.",
            "Great question. Start with the big picture.",
            "Here's a simple way to think about it.",
        ),
    ),
    DemoChatbot(
        name="Writing Coach",
        openrouter_id="anthropic/claude-haiku-4.5",
        owner="sofia.rossi",
        weight=9,
        system_prompt=(
            "You are a writing coach. Improve clarity and tone while keeping the author's voice. "
            "Explain each change in one short sentence."
        ),
        user_tokens=(150, 1200),
        reply_tokens=(150, 900),
        openers=(
            "Can you tighten this cover letter?",
            "Make this product announcement sound less stiff.",
            "Is the tone of this email to my manager OK?",
            "Help me shorten this abstract to 150 words.",
        ),
        replies=(
            "Here is a tighter version, with the changes explained below.",
            "The draft is clear; the main issue is the long opening.",
            "I kept your voice and cut about a third.",
        ),
    ),
    DemoChatbot(
        name="SQL Helper",
        openrouter_id="deepseek/deepseek-v3.2",
        owner="mkowalski",
        weight=8,
        system_prompt=(
            "You help analysts write correct, efficient SQL for PostgreSQL. Ask for the schema when it "
            "is missing, and explain any index the query needs."
        ),
        user_tokens=(80, 900),
        reply_tokens=(120, 700),
        openers=(
            "Write a query for monthly active users by country.",
            "Why is this GROUP BY query so slow?",
            "How do I find duplicate emails ignoring case?",
            "Turn this subquery into a window function.",
        ),
        replies=(
            "Here is a query that does it in one pass.",
            "The slow part is the sequential scan; an index helps.",
            "A window function makes this much simpler.",
        ),
    ),
    DemoChatbot(
        name="Quick Answers",
        openrouter_id="openrouter/free",
        owner=None,
        weight=8,
        system_prompt="Answer in at most three sentences. Be direct.",
        user_tokens=(10, 80),
        reply_tokens=(20, 150),
        openers=(
            "What's the capital of Australia?",
            "How many ounces in a cup?",
            "Convert 72°F to Celsius.",
            "Who wrote One Hundred Years of Solitude?",
            "What time zone is Lisbon in?",
        ),
        replies=("Short answer:", "In brief:", "Quick answer:"),
    ),
    DemoChatbot(
        name="Meeting Summarizer",
        openrouter_id="google/gemini-2.5-flash",
        owner="noah.williams",
        weight=7,
        system_prompt=(
            "Summarize meeting transcripts: decisions, action items with owners and dates, open "
            "questions. Use bullet points and keep it under 200 words."
        ),
        user_tokens=(2000, 9000),
        reply_tokens=(150, 500),
        openers=(
            "Summarize this transcript of our weekly product sync.",
            "Pull the action items out of this customer call.",
            "Here are the notes from the planning meeting, what did we decide?",
        ),
        replies=(
            "Decisions, action items and open questions:",
            "Summary of the meeting:",
            "Here are the action items with owners:",
        ),
    ),
    DemoChatbot(
        name="Translator",
        openrouter_id="mistralai/mistral-small-3.2-24b-instruct",
        owner="emma.dubois",
        weight=6,
        system_prompt=(
            "Translate the user's text faithfully into the requested language, keeping formatting. "
            "Flag idioms that do not translate literally."
        ),
        user_tokens=(40, 600),
        reply_tokens=(40, 600),
        openers=(
            "Translate this paragraph into French.",
            "How would a native speaker say this in German?",
            "Translate our release notes into Spanish.",
            "Translate this email to Japanese, formal tone.",
        ),
        replies=("Here is the translation:", "Translation (formal register):", "Here it is:"),
    ),
    DemoChatbot(
        name="Research Analyst",
        openrouter_id="openai/gpt-5.4",
        owner="amelia.chen",
        weight=5,
        system_prompt=(
            "You are a careful research analyst. Structure answers as findings, evidence and "
            "caveats. Distinguish what is known from what is estimated."
        ),
        user_tokens=(100, 1500),
        reply_tokens=(400, 2000),
        openers=(
            "Compare the pricing models of the top three CRM vendors.",
            "What are the main risks of moving our data warehouse to the cloud?",
            "Summarize the arguments for and against a four-day work week.",
        ),
        replies=("Findings first, then the evidence.", "Here is a structured comparison.", "Short version:"),
    ),
    DemoChatbot(
        name="Travel Planner",
        openrouter_id="google/gemma-4-31b-it:free",
        owner=None,
        weight=4,
        system_prompt=(
            "You plan trips: day-by-day itineraries, realistic travel times and a rough budget. Ask "
            "about dates and interests when they are missing."
        ),
        user_tokens=(30, 300),
        reply_tokens=(200, 900),
        openers=(
            "Plan four days in Lisbon in October.",
            "Cheapest way to get from Tokyo to Kyoto?",
            "A week in Scotland with kids, what should we see?",
        ),
        replies=("Here's a day-by-day plan.", "A few options, cheapest first.", "Here's what I'd suggest."),
    ),
    DemoChatbot(
        name="Recipe Ideas",
        openrouter_id="z-ai/glm-5.2:free",
        owner=None,
        weight=4,
        system_prompt="Suggest recipes from what the user has at home. List ingredients, then steps.",
        user_tokens=(20, 150),
        reply_tokens=(150, 600),
        openers=(
            "I have chickpeas, spinach and rice. Dinner ideas?",
            "A vegan dessert without an oven?",
            "What can I cook in 15 minutes with eggs and leftover pasta?",
        ),
        replies=("Here's an easy one.", "Try this:", "Two ideas, quickest first."),
    ),
    DemoChatbot(
        name="Brainstorm Partner",
        openrouter_id="meta-llama/llama-3.3-70b-instruct",
        owner="jpatel",
        weight=3,
        system_prompt=(
            "Help the user brainstorm. Offer many varied ideas quickly, then help narrow them down "
            "with simple criteria."
        ),
        user_tokens=(30, 300),
        reply_tokens=(200, 800),
        openers=(
            "Names for a note-taking app?",
            "Ideas for a team offsite that isn't escape rooms.",
            "Blog post topics about remote work.",
        ),
        replies=("Here are twelve ideas to start.", "Some options, from safe to bold:", "A first batch:"),
    ),
)

FOLLOW_UPS: tuple[str, ...] = (
    "Thanks! Can you make it shorter?",
    "What about edge cases?",
    "Can you give me an example?",
    "That helps. One more question about this.",
    "Could you explain the second point in more detail?",
    "Great, and how would that change if the numbers doubled?",
)

# Sessions with 1, 2, 3… exchanges: most conversations are short.
TURN_WEIGHTS: tuple[int, ...] = (30, 25, 18, 12, 8, 7)
# Activity by local hour of day: quiet at night, busy in office hours.
HOUR_WEIGHTS: tuple[int, ...] = (1, 1, 1, 1, 1, 2, 3, 5, 8, 10, 10, 9, 7, 9, 10, 10, 9, 7, 5, 4, 4, 3, 2, 1)


def demo_catalog_load(*, path: Path = DEMO_CATALOG_PATH) -> list[CatalogEntry]:
    """Return the models of the demo catalog, a slice of OpenRouter's real catalog."""
    return catalog_parse(document=catalog_load_file(path=path))


def request_cost_compute(*, ai_model: AIModel, prompt_tokens: int, completion_tokens: int) -> Decimal:
    """Return what a request costs at the model's per-token prices, rounded half-up to the cost field."""
    # An unknown price is billed as zero: the demo has no better figure.
    prompt_price = ai_model.prompt_price or Decimal(0)
    completion_price = ai_model.completion_price or Decimal(0)
    cost = prompt_tokens * prompt_price + completion_tokens * completion_price
    return cost.quantize(COST_QUANTUM, rounding=ROUND_HALF_UP)


def _models_ensure(*, entries: Sequence[CatalogEntry]) -> tuple[dict[str, AIModel], int]:
    models: dict[str, AIModel] = {}
    created_count = 0
    for entry in entries:
        # A model already synced from the catalog keeps its stored prices.
        model, created = AIModel.objects.get_or_create(openrouter_id=entry.openrouter_id, defaults=entry.model_values())
        models[entry.openrouter_id] = model
        created_count += created
    return models, created_count


def _users_ensure(*, rng: random.Random, now: datetime) -> tuple[list[User], int]:
    users: list[User] = []
    created_count = 0
    for username, first_name, last_name in DEMO_USERS:
        # Drawn before the lookup so that existing users do not shift the rest of the sequence.
        joined = now - timedelta(days=DEMO_DAYS + rng.randint(1, 60), minutes=rng.randint(0, 24 * 60))
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User(
                username=username,
                first_name=first_name,
                last_name=last_name,
                email=f"{username}@example.com",
                date_joined=joined,
            )
            # Demo people never log in; only the demo superuser does.
            user.set_unusable_password()
            user.save()
            created_count += 1
        users.append(user)
    return users, created_count


def _chatbots_ensure(
    *, models: dict[str, AIModel], users_by_name: dict[str, User], now: datetime
) -> tuple[list[Chatbot], int]:
    chatbots: list[Chatbot] = []
    created_count = 0
    for index, spec in enumerate(DEMO_CHATBOTS):
        chatbot = Chatbot.objects.filter(name=spec.name).order_by("id").first()
        if chatbot is None:
            chatbot = Chatbot.objects.create(
                name=spec.name,
                owner=users_by_name.get(spec.owner) if spec.owner else None,
                ai_model=models[spec.openrouter_id],
                system_prompt=spec.system_prompt,
                is_active=True,
                created_at=now - timedelta(days=DEMO_DAYS + 14 - index),
            )
            created_count += 1
        chatbots.append(chatbot)
    return chatbots, created_count


def _session_start(*, rng: random.Random, first: datetime, last: datetime) -> datetime:
    """Return a session start between ``first`` and ``last``: busier lately, on weekdays, in office hours."""
    days = (timezone.localtime(last).date() - timezone.localtime(first).date()).days
    while True:
        # A density rising towards today: the platform is growing.
        day = timezone.localtime(first).date() + timedelta(days=round(days * rng.random() ** 0.7))
        if day.weekday() >= 5 and rng.random() < 0.55:
            continue
        hour = rng.choices(range(24), weights=HOUR_WEIGHTS)[0]
        start = _local_datetime(day=day, hour=hour, second=rng.randrange(3600))
        if first <= start <= last:
            return start


def _local_datetime(*, day: date, hour: int, second: int) -> datetime:
    return timezone.make_aware(datetime.combine(day, time(hour))) + timedelta(seconds=second)


def _user_weights(*, rng: random.Random, users: Sequence[User]) -> list[float]:
    ranking = list(range(len(users)))
    rng.shuffle(ranking)
    weights = [0.0] * len(users)
    for rank, index in enumerate(ranking):
        if rank < len(users) - DEMO_IDLE_USERS:
            # Zipf-like: a few heavy users, then a long tail.
            weights[index] = 1 / (rank + 1) ** 1.2
    return weights


@transaction.atomic
def demo_platform_seed(
    *, seed: int = DEFAULT_SEED, now: datetime | None = None, session_count: int = DEMO_SESSION_COUNT
) -> DemoSeedResult:
    """Create the demo platform (users, models, chatbots, conversations, request costs) once."""
    if OpenRouterRequestCost.objects.filter(generation_id__startswith=DEMO_GENERATION_PREFIX).exists():
        return DemoSeedResult(created=False)
    # Demo data, not a secret: a seeded generator is the point, it makes runs repeatable.
    rng = random.Random(seed)  # noqa: S311
    now = now or timezone.now()
    first = now - timedelta(days=DEMO_DAYS)
    # Room for the longest conversation to end before now.
    last = now - timedelta(hours=2)

    models, models_created = _models_ensure(entries=demo_catalog_load())
    users, users_created = _users_ensure(rng=rng, now=now)
    chatbots, chatbots_created = _chatbots_ensure(
        models=models, users_by_name={user.username: user for user in users}, now=now
    )
    specs = {spec.name: spec for spec in DEMO_CHATBOTS}
    chatbot_weights = [specs[chatbot.name].weight for chatbot in chatbots]
    user_weights = _user_weights(rng=rng, users=users)
    favourites = {user.pk: rng.choices(chatbots, weights=chatbot_weights, k=2) for user in users}

    sessions: list[ChatSession] = []
    turns_by_session: list[list[DemoTurn]] = []
    for _ in range(session_count):
        user = rng.choices(users, weights=user_weights)[0]
        # People mostly return to the chatbots they like.
        if rng.random() < 0.65:
            chatbot = rng.choice(favourites[user.pk])
        else:
            chatbot = rng.choices(chatbots, weights=chatbot_weights)[0]
        spec = specs[chatbot.name]
        started = _session_start(rng=rng, first=first, last=last)
        opener = rng.choice(spec.openers)
        turn_count = rng.choices(range(1, len(TURN_WEIGHTS) + 1), weights=TURN_WEIGHTS)[0]
        turns: list[DemoTurn] = []
        at = started
        for index in range(turn_count):
            replied_at = at + timedelta(seconds=rng.randint(2, 45))
            turns.append(
                DemoTurn(
                    question=opener if index == 0 else rng.choice(FOLLOW_UPS),
                    # The opener carries the material (code, a transcript); follow-ups are short.
                    question_tokens=rng.randint(*spec.user_tokens) if index == 0 else rng.randint(10, 120),
                    asked_at=at,
                    reply=rng.choice(spec.replies),
                    reply_tokens=rng.randint(*spec.reply_tokens),
                    replied_at=replied_at,
                )
            )
            at = replied_at + timedelta(seconds=rng.randint(20, 420))
        sessions.append(ChatSession(user=user, chatbot=chatbot, title=opener[:80], created_at=started))
        turns_by_session.append(turns)
    ChatSession.objects.bulk_create(sessions)

    messages: list[ChatMessage] = []
    for session, turns in zip(sessions, turns_by_session, strict=True):
        for turn in turns:
            messages.append(
                ChatMessage(
                    session=session, role=ChatMessage.Role.USER, content=turn.question, created_at=turn.asked_at
                )
            )
            messages.append(
                ChatMessage(
                    session=session, role=ChatMessage.Role.ASSISTANT, content=turn.reply, created_at=turn.replied_at
                )
            )
    ChatMessage.objects.bulk_create(messages, batch_size=500)

    request_count = 0
    total_cost = Decimal(0)
    for session, turns in zip(sessions, turns_by_session, strict=True):
        ai_model = session.chatbot.ai_model
        # Each request sends the system prompt and the whole conversation so far.
        context_tokens = len(session.chatbot.system_prompt) // 4
        for turn in turns:
            prompt_tokens = context_tokens + turn.question_tokens
            cost = request_cost_compute(
                ai_model=ai_model, prompt_tokens=prompt_tokens, completion_tokens=turn.reply_tokens
            )
            request_count += 1
            request_cost_record(
                user=session.user,
                ai_model=ai_model,
                session=session,
                prompt_tokens=prompt_tokens,
                completion_tokens=turn.reply_tokens,
                cost_usd=cost,
                generation_id=f"{DEMO_GENERATION_PREFIX}{request_count:06d}",
                created_at=turn.replied_at,
            )
            total_cost += cost
            context_tokens = prompt_tokens + turn.reply_tokens
    return DemoSeedResult(
        created=True,
        users=users_created,
        ai_models=models_created,
        chatbots=chatbots_created,
        sessions=len(sessions),
        messages=len(messages),
        requests=request_count,
        total_cost_usd=total_cost,
    )
