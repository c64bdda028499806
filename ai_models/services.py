"""Write side of the AI model catalog: parse OpenRouter's GET /models and upsert AIModel."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils import timezone

from ai_models.models import AIModel, CatalogSync
from chatbot.openrouter import OpenRouterClient, json_decode_exact

_PRICE_FIELD = AIModel._meta.get_field("prompt_price")
PRICE_DECIMAL_PLACES = _PRICE_FIELD.decimal_places
# The largest price the column holds, exclusive: 10 ** (max_digits - decimal_places).
PRICE_LIMIT = Decimal(10) ** (_PRICE_FIELD.max_digits - _PRICE_FIELD.decimal_places)
OPENROUTER_ID_MAX_LENGTH = AIModel._meta.get_field("openrouter_id").max_length
NAME_MAX_LENGTH = AIModel._meta.get_field("name").max_length
PROVIDER_MAX_LENGTH = AIModel._meta.get_field("provider").max_length
CONTEXT_LENGTH_MAX = 2**31 - 1
FREE_SUFFIX = ":free"
# A catalog with more problems than this lists only the first ones.
MAX_REPORTED_PROBLEMS = 20


class CatalogError(Exception):
    """The catalog is malformed; nothing was changed."""

    def __init__(self, message: str, *, problems: list[str] | None = None) -> None:
        self.problems = problems or []
        shown = self.problems[:MAX_REPORTED_PROBLEMS]
        more = len(self.problems) - len(shown)
        details = "".join(f"\n  - {problem}" for problem in shown) + (f"\n  - ... and {more} more" if more else "")
        super().__init__(message + details)


@dataclass(frozen=True)
class CatalogEntry:
    """One model of the catalog, validated and ready to store."""

    openrouter_id: str
    name: str
    provider: str
    context_length: int | None
    # None: dynamic pricing (a negative price in the catalog), decided per request.
    prompt_price: Decimal | None
    completion_price: Decimal | None
    is_free: bool

    def model_values(self) -> dict[str, Any]:
        """Return the AIModel field values this entry sets, for an active model."""
        return {
            "name": self.name,
            "provider": self.provider,
            "context_length": self.context_length,
            "prompt_price": self.prompt_price,
            "completion_price": self.completion_price,
            "is_free": self.is_free,
            "is_active": True,
        }


@dataclass(frozen=True)
class PriceChange:
    openrouter_id: str
    old: tuple[Decimal | None, Decimal | None]
    new: tuple[Decimal | None, Decimal | None]


@dataclass(frozen=True)
class CatalogSyncResult:
    """What one sync changed; each model is counted in one list only (a repriced one is not also updated)."""

    sync: CatalogSync
    created: list[str]
    updated: list[str]
    repriced: list[PriceChange]
    deactivated: list[str]
    unchanged: int


def openrouter_id_provider(*, openrouter_id: str) -> str:
    """Return the provider named by an OpenRouter id: its prefix before "/" ("~" alias marker dropped)."""
    prefix, slash, _ = openrouter_id.partition("/")
    return prefix.lstrip("~") if slash else ""


def _price_parse(*, raw: Any, label: str, problems: list[str]) -> tuple[Decimal | None, bool]:
    """Return (price, is_dynamic) for one catalog price string; append to ``problems`` if invalid."""
    if isinstance(raw, bool) or not isinstance(raw, str | int | Decimal):
        problems.append(f"{label} is {raw!r}, not a decimal string.")
        return None, False
    try:
        price = Decimal(raw.strip() if isinstance(raw, str) else raw)
    except InvalidOperation:
        problems.append(f"{label} is {raw!r}, not a number.")
        return None, False
    if not price.is_finite():
        problems.append(f"{label} is {raw!r}, not a finite number.")
        return None, False
    if price < 0:
        # OpenRouter's "-1": the router decides the price per request, so there is no fixed one.
        return None, True
    if price != price.quantize(Decimal(1).scaleb(-PRICE_DECIMAL_PLACES), rounding="ROUND_DOWN"):
        problems.append(f"{label} {raw!r} has more than {PRICE_DECIMAL_PLACES} decimal places.")
        return None, False
    if price >= PRICE_LIMIT:
        problems.append(f"{label} {raw!r} is not below {PRICE_LIMIT} USD per token.")
        return None, False
    return price, False


def _entry_parse(*, item: Any, index: int, problems: list[str]) -> CatalogEntry | None:
    """Return one validated catalog entry, or None after appending its problems."""
    if not isinstance(item, dict):
        problems.append(f"data[{index}] is not an object.")
        return None
    openrouter_id = item.get("id")
    if not isinstance(openrouter_id, str) or not openrouter_id.strip() or openrouter_id != openrouter_id.strip():
        problems.append(f"data[{index}] has no valid id: {openrouter_id!r}.")
        return None
    label = f"{openrouter_id!r} (data[{index}])"
    count_before = len(problems)
    if len(openrouter_id) > OPENROUTER_ID_MAX_LENGTH:
        problems.append(f"{label}: the id is longer than {OPENROUTER_ID_MAX_LENGTH} characters.")
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(f"{label}: no name.")
    elif len(name) > NAME_MAX_LENGTH:
        problems.append(f"{label}: the name is longer than {NAME_MAX_LENGTH} characters.")
    provider = openrouter_id_provider(openrouter_id=openrouter_id)
    if len(provider) > PROVIDER_MAX_LENGTH:
        problems.append(f"{label}: the provider is longer than {PROVIDER_MAX_LENGTH} characters.")
    context_length = item.get("context_length")
    if context_length is not None and (
        isinstance(context_length, bool)
        or not isinstance(context_length, int)
        or not 0 <= context_length <= CONTEXT_LENGTH_MAX
    ):
        problems.append(f"{label}: context_length {context_length!r} is not a non-negative integer.")
    pricing = item.get("pricing")
    prompt_price = completion_price = None
    dynamic = False
    if not isinstance(pricing, dict):
        problems.append(f"{label}: no pricing object.")
    else:
        # The newer catalog format leaves zero-valued price keys out.
        prompt_price, prompt_dynamic = _price_parse(
            raw=pricing.get("prompt", "0"), label=f"{label}: pricing.prompt", problems=problems
        )
        completion_price, completion_dynamic = _price_parse(
            raw=pricing.get("completion", "0"), label=f"{label}: pricing.completion", problems=problems
        )
        dynamic = prompt_dynamic or completion_dynamic
    if len(problems) > count_before:
        return None
    both_zero = prompt_price == 0 and completion_price == 0
    return CatalogEntry(
        openrouter_id=openrouter_id,
        name=name.strip(),
        provider=provider,
        context_length=context_length,
        prompt_price=prompt_price,
        completion_price=completion_price,
        # A dynamically priced router may route to paid models, whatever its id says.
        is_free=not dynamic and (openrouter_id.endswith(FREE_SUFFIX) or both_zero),
    )


def catalog_parse(*, document: Any) -> list[CatalogEntry]:
    """Return every model of a decoded GET /models document, or raise CatalogError listing its problems."""
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise CatalogError('The catalog is not an object with a "data" list of models.')
    if not document["data"]:
        # An empty catalog would deactivate every model: far likelier a broken response than the truth.
        raise CatalogError("The catalog lists no models.")
    problems: list[str] = []
    entries: list[CatalogEntry] = []
    seen: set[str] = set()
    for index, item in enumerate(document["data"]):
        entry = _entry_parse(item=item, index=index, problems=problems)
        if entry is None:
            continue
        if entry.openrouter_id in seen:
            problems.append(f"{entry.openrouter_id!r} (data[{index}]) is listed twice.")
            continue
        seen.add(entry.openrouter_id)
        entries.append(entry)
    if problems:
        raise CatalogError(
            f"The catalog is malformed ({len(problems)} problems); nothing was changed:", problems=problems
        )
    return entries


def catalog_load_file(*, path: str | Path) -> Any:
    """Return the decoded catalog saved in ``path`` (prices stay exact), or raise CatalogError."""
    try:
        content = Path(path).read_bytes()
    except OSError as error:
        raise CatalogError(f"Cannot read {path}: {error.strerror or error}.") from None
    try:
        return json_decode_exact(content)
    except ValueError as error:
        raise CatalogError(f"{path} is not valid JSON: {error}.") from None


@transaction.atomic
def catalog_sync(*, document: Any, source: str, synced_at: datetime | None = None) -> CatalogSyncResult:
    """Upsert AIModel from a decoded catalog and deactivate the models it no longer lists."""
    # Everything is validated before the first write, so a malformed catalog changes nothing.
    entries = catalog_parse(document=document)
    synced_at = synced_at or timezone.now()
    existing = {model.openrouter_id: model for model in AIModel.objects.select_for_update()}
    created: list[AIModel] = []
    updated: list[str] = []
    repriced: list[PriceChange] = []
    unchanged = 0
    for entry in entries:
        model = existing.get(entry.openrouter_id)
        values = entry.model_values()
        if model is None:
            created.append(AIModel(openrouter_id=entry.openrouter_id, **values))
            continue
        changed = [field for field, value in values.items() if getattr(model, field) != value]
        if not changed:
            unchanged += 1
            continue
        old_prices = (model.prompt_price, model.completion_price)
        for field in changed:
            setattr(model, field, values[field])
        model.save(update_fields=[*changed, "updated_at"])
        if {"prompt_price", "completion_price"} & set(changed):
            repriced.append(
                PriceChange(
                    openrouter_id=model.openrouter_id,
                    old=old_prices,
                    new=(model.prompt_price, model.completion_price),
                )
            )
        else:
            updated.append(model.openrouter_id)
    AIModel.objects.bulk_create(created)

    listed = {entry.openrouter_id for entry in entries}
    # Deactivated, never deleted: their requests stay in the reports.
    deactivated = sorted(
        openrouter_id for openrouter_id, model in existing.items() if model.is_active and openrouter_id not in listed
    )
    if deactivated:
        AIModel.objects.filter(openrouter_id__in=deactivated).update(is_active=False, updated_at=synced_at)

    sync = CatalogSync.objects.create(
        synced_at=synced_at,
        source=source[: CatalogSync._meta.get_field("source").max_length],
        model_count=len(entries),
        created_count=len(created),
        updated_count=len(updated),
        repriced_count=len(repriced),
        deactivated_count=len(deactivated),
        unchanged_count=unchanged,
    )
    return CatalogSyncResult(
        sync=sync,
        created=sorted(model.openrouter_id for model in created),
        updated=sorted(updated),
        repriced=sorted(repriced, key=lambda change: change.openrouter_id),
        deactivated=deactivated,
        unchanged=unchanged,
    )


def catalog_sync_from_openrouter(*, client: OpenRouterClient | None = None) -> CatalogSyncResult:
    """Fetch GET /models from OpenRouter and sync the catalog from it."""
    if client is not None:
        document = client.models()
        return catalog_sync(document=document, source=f"{client.base_url}/models")
    with OpenRouterClient.from_settings() as own_client:
        document = own_client.models()
        return catalog_sync(document=document, source=f"{own_client.base_url}/models")


def catalog_sync_from_file(*, path: str | Path) -> CatalogSyncResult:
    """Sync the catalog from a saved GET /models response."""
    return catalog_sync(document=catalog_load_file(path=path), source=str(path))


__all__ = [
    "CatalogEntry",
    "CatalogError",
    "CatalogSyncResult",
    "PriceChange",
    "catalog_load_file",
    "catalog_parse",
    "catalog_sync",
    "catalog_sync_from_file",
    "catalog_sync_from_openrouter",
    "openrouter_id_provider",
]
