"""Time the admin report pages, the same pages without reports, and the raw report selectors.

Requires Django to be set up against a loaded benchmark database (see ``bench.__main__``).
Every series is timed with ``time.perf_counter`` over repeated calls in this process, after
warm-up calls; a series stops early, after at least ``min_repeat`` samples, once it has run for
``budget`` seconds (and at three budgets whatever it has), so that slow pages on big datasets
still finish. p50 and p95 are taken by the nearest-rank method (with fewer than 20 samples,
p95 is the slowest sample).
"""

import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.writes import WriteSeries


@dataclass(frozen=True)
class Page:
    """An admin page to time: its URL name, and the model whose ModelAdmin draws its reports."""

    key: str
    url_names: tuple[str, ...]  # Tried in order: the first that resolves is the page's URL.
    model: str | None = None  # "app_label.ModelName"; None for a page that is all reports (the dashboard).


# The pages measured, in order; a page whose URL does not resolve yet is reported as skipped.
PAGES: tuple[Page, ...] = (
    Page("request_costs", ("admin:chatbot_openrouterrequestcost_changelist",), "chatbot.OpenRouterRequestCost"),
    Page("users", ("admin:accounts_user_changelist",), "accounts.User"),
    Page("ai_models", ("admin:ai_models_aimodel_changelist",), "ai_models.AIModel"),
    Page("chatbots", ("admin:chatbot_chatbot_changelist",), "chatbot.Chatbot"),
    Page("dashboard", ("reports:dashboard", "admin:reports_dashboard")),
)
# The periods of the scale issue's targets, measured in every run (``--periods`` adds other presets
# of reports.periods.PRESETS, timed and reported alike but not checked against the targets).
TARGET_PERIODS: tuple[str, ...] = ("all-time", "last-30-days")


def periods_measured(*, presets: Sequence[str]) -> tuple[tuple[str, dict[str, str], str | None], ...]:
    """Return (name, query parameters of the pages, preset of the selectors or None for all time) per preset."""
    return tuple(
        (preset, {}, None) if preset == "all-time" else (preset, {"period": preset}, preset) for preset in presets
    )


# Targets of the scale issue, checked on every page series (PostgreSQL 10M rows; SQLite 1M rows),
# and on the write series (PostgreSQL): requests/s of 4 writers together, rows/s of a bulk import.
TARGETS = {
    "postgresql": {
        "p50_ms": 80.0,
        "p95_ms": 150.0,
        "raw_over_page": 50.0,
        "record_per_second": 2_000.0,
        "import_rows_per_second": 50_000.0,
        # p50 at 10M over p50 at 100k requests, checked when the run is given a baseline run.
        "over_baseline": 1.5,
    },
    "sqlite": {"p50_ms": 150.0},
}
# The write series' target of TARGETS, and its unit.
WRITE_TARGETS = {"record": ("record_per_second", "requests/s"), "import": ("import_rows_per_second", "rows/s")}


@dataclass
class Options:
    """How hard to measure."""

    warmup: int = 3
    repeat: int = 20
    min_repeat: int = 5
    budget: float = 60.0  # Seconds per series before it may stop short of ``repeat`` samples.
    timeout: float = 60.0  # Seconds one call may take before its queries are cancelled and the series ends.
    periods: tuple[str, ...] = TARGET_PERIODS  # Presets of reports.periods.PRESETS, in the order measured.


class CallTimeout(Exception):
    """A timed call ran past the timeout and had its database query cancelled."""


@contextmanager
def watchdog(seconds: float) -> Iterator[None]:
    """Cancel the running query of this thread's connection when the block runs past ``seconds``."""
    from django.db import DEFAULT_DB_ALIAS, connections

    # This thread's connection object: the timer's thread would get a connection of its own.
    wrapper = connections[DEFAULT_DB_ALIAS]
    fired = threading.Event()

    def cancel() -> None:
        fired.set()
        raw = wrapper.connection
        if raw is None:
            return
        if wrapper.vendor == "sqlite":
            raw.interrupt()
        else:
            raw.cancel_safe() if hasattr(raw, "cancel_safe") else raw.cancel()

    timer = threading.Timer(seconds, cancel)
    timer.daemon = True
    timer.start()
    try:
        yield
    except Exception as error:
        if fired.is_set():
            raise CallTimeout(f"timeout: cancelled after {seconds:g} s") from error
        raise
    finally:
        timer.cancel()


@dataclass
class Series:
    """One timed thing (a page, a page without reports, a report from the rollups or raw) for one period."""

    # "page", "page-no-reports", "rollup-selector" (a report as the pages compute it) or "selector"
    # (the same report aggregated from the raw rows)
    kind: str
    target: str
    period: str
    url: str = ""
    samples_ms: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    location: str = ""
    queries: int | None = None
    error: str = ""
    note: str = ""

    @property
    def p50(self) -> float | None:
        return percentile(self.samples_ms, 50)

    @property
    def p95(self) -> float | None:
        return percentile(self.samples_ms, 95)

    @property
    def status(self) -> str:
        """Return the HTTP status as text, "ERR" for an exception, "" for a selector."""
        if self.error:
            return "TIMEOUT" if self.timed_out else "ERR"
        if not self.statuses:
            return ""
        counts = Counter(self.statuses)
        return "/".join(str(status) for status, _ in counts.most_common())

    @property
    def timed_out(self) -> bool:
        return self.error.startswith("timeout")

    @property
    def failed(self) -> bool:
        """Return whether the code under test failed (an exception other than a timeout, or a 5xx)."""
        return (bool(self.error) and not self.timed_out) or any(status >= 500 for status in self.statuses)

    @property
    def flagged(self) -> bool:
        """Return whether the series did not measure what it meant to (an error or a non-200 page)."""
        return bool(self.error) or any(status != 200 for status in self.statuses)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["samples_ms"] = [round(sample, 3) for sample in self.samples_ms]
        data.update(n=len(self.samples_ms), p50_ms=_round(self.p50), p95_ms=_round(self.p95), flagged=self.flagged)
        return data


def percentile(samples: list[float], rank: float) -> float | None:
    """Return the nearest-rank percentile of ``samples``, or None when there are none."""
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(rank / 100 * len(ordered)) - 1)]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _timed(
    call: Callable[[], Any], *, options: Options, on_result: Callable[[Any], None], samples: list[float]
) -> None:
    started = time.perf_counter()
    for _ in range(options.warmup):
        with watchdog(options.timeout):
            on_result(call())
        # On a big dataset one warm-up of a slow page is enough: its caches are warm after it.
        if time.perf_counter() - started > options.budget / 4:
            break
    started = time.perf_counter()
    while len(samples) < options.repeat:
        with watchdog(options.timeout):
            before = time.perf_counter()
            result = call()
            elapsed = time.perf_counter() - before
        samples.append(elapsed * 1000)
        on_result(result)
        elapsed_total = time.perf_counter() - started
        # Past the budget: stop with min_repeat samples, or with what there is at three budgets,
        # so that a page of many seconds costs minutes, not an hour, and still shows its scale.
        if elapsed_total > options.budget and (
            len(samples) >= options.min_repeat or elapsed_total > 3 * options.budget
        ):
            break


@contextmanager
def reports_off(model_admin: Any) -> Iterator[None]:
    """Make ``model_admin`` draw no reports for the duration, as if it had none: no report, no headline, no chart."""
    switched = {"report_keys": (), "show_usage_overview": False}
    own = vars(model_admin)
    previous = {name: own[name] for name in switched if name in own}
    for name, value in switched.items():
        setattr(model_admin, name, value)
    try:
        yield
    finally:
        for name in switched:
            if name in previous:
                setattr(model_admin, name, previous[name])
            else:
                delattr(model_admin, name)


def bench_superuser() -> Any:
    """Return the superuser the pages are loaded as, creating it when the dataset lacks one."""
    from django.contrib.auth import get_user_model

    from bench.dataset import BENCH_ADMIN_USERNAME

    user_model = get_user_model()
    user = user_model.objects.filter(username=BENCH_ADMIN_USERNAME).first()
    if user is None:
        user = user_model.objects.create_superuser(username=BENCH_ADMIN_USERNAME, email="", password=None)
    return user


def _page_series(*, client: Any, page: Page, url: str, kind: str, period: str, options: Options) -> Series:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    series = Series(kind=kind, target=page.key, period=period, url=url)

    def record(response: Any) -> None:
        series.statuses.append(response.status_code)
        if response.status_code in {301, 302} and not series.location:
            series.location = response.get("Location", "")

    try:
        _timed(lambda: client.get(url), options=options, on_result=record, samples=series.samples_ms)
        # Outside the timed calls: counting queries turns on the cursor's debug recording.
        with CaptureQueriesContext(connection) as queries:
            client.get(url)
        series.queries = len(queries.captured_queries)
    except CallTimeout as error:
        series.error = str(error)
    except Exception as error:  # A broken page is a result to report, not a reason to stop.
        series.error = f"{type(error).__name__}: {error}"[:500]
    return series


def _first_reversible(url_names: tuple[str, ...]) -> str | None:
    from django.urls import NoReverseMatch, reverse

    for url_name in url_names:
        try:
            return reverse(url_name)
        except NoReverseMatch:
            continue
    return None


def _selector_series(
    *, kind: str, key: str, period: str, function: Callable[..., Any], arguments: dict[str, Any], options: Options
) -> Series:
    """Time one report's selector called directly; an error or a timeout ends the series and is kept."""
    series = Series(kind=kind, target=key, period=period, url=f"{function.__module__}.{function.__qualname__}")
    try:
        _timed(lambda: function(**arguments), options=options, on_result=lambda _: None, samples=series.samples_ms)
    except CallTimeout as error:
        series.error = str(error)
    except Exception as error:
        series.error = f"{type(error).__name__}: {error}"[:500]
    return series


def measure(*, options: Options, echo: Callable[[str], None] = print) -> list[Series]:
    """Time every page of PAGES, and every report of the registry from the rollups and raw, over each period."""
    from urllib.parse import urlencode

    from django.apps import apps
    from django.contrib import admin
    from django.test import Client

    from reports import raw_selectors
    from reports.periods import ALL_TIME, period_from_preset
    from reports.registry import REPORTS
    from reports.selectors import DEFAULT_LIMIT

    client = Client()
    client.force_login(bench_superuser())
    periods = periods_measured(presets=options.periods)
    results: list[Series] = []

    def add(series: Series) -> None:
        results.append(series)
        figures = f"p50 {series.p50:8.1f} ms  p95 {series.p95:8.1f} ms" if series.samples_ms else ""
        flag = f"  [{series.status}{' ' + series.location if series.location else ''}]" if series.flagged else ""
        detail = series.note or series.error[:80]
        echo(f"  {series.kind:<16} {series.target:<28} {series.period:<13} {figures}{flag} {detail}".rstrip())

    for page in PAGES:
        path = _first_reversible(page.url_names)
        if path is None:
            for period, _, _ in periods:
                note = f"skipped: no URL {' or '.join(page.url_names)}"
                add(Series(kind="page", target=page.key, period=period, note=note))
            continue
        model_admin = admin.site._registry.get(apps.get_model(page.model)) if page.model else None
        for period, params, _ in periods:
            url = f"{path}?{urlencode(params)}" if params else path
            add(_page_series(client=client, page=page, url=url, kind="page", period=period, options=options))
            if model_admin is None:
                continue
            if not hasattr(model_admin, "report_keys"):
                add(Series(kind="page-no-reports", target=page.key, period=period, note="skipped: no reports"))
                continue
            with reports_off(model_admin):
                add(
                    _page_series(
                        client=client, page=page, url=url, kind="page-no-reports", period=period, options=options
                    )
                )

    for key, report in REPORTS.items():
        for period, _, preset in periods:
            selected = period_from_preset(preset=preset) if preset else ALL_TIME
            if report.value is not None:
                function, arguments = report.value, {"period": selected}
            else:
                function, arguments = report.rows, {"period": selected, "limit": DEFAULT_LIMIT}
            # The report as the pages compute it, from the rollups; then the same report aggregated
            # from the raw rows, the baseline.
            raw = getattr(raw_selectors, function.__name__)
            for kind, selector in (("rollup-selector", function), ("selector", raw)):
                add(
                    _selector_series(
                        kind=kind, key=key, period=period, function=selector, arguments=arguments, options=options
                    )
                )
    return results


# A fixed amount of work in Python and in the database, timed at the start and the end of a run: the
# machine's speed drifts (twice as slow from one hour to the next was seen), and these tell a page
# that got slower from a machine that did. The query is portable SQL (a recursive count).
SPEED_LOOP = 300_000
SPEED_QUERY = (
    "WITH RECURSIVE numbers (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM numbers WHERE n < 100000) "
    "SELECT COUNT(*) FROM numbers"
)
SPEED_REPEAT = 9


def machine_speed() -> dict[str, float]:
    """Return the p50 ms of a fixed Python loop and of a fixed query on the benchmark's database."""
    from django.db import connection

    def loop() -> int:
        return sum(number * number % 7 for number in range(SPEED_LOOP))

    def query() -> int:
        with connection.cursor() as cursor:
            cursor.execute(SPEED_QUERY)
            return cursor.fetchone()[0]

    speeds = {}
    for name, work in (("python_ms", loop), ("sql_ms", query)):
        samples = []
        for _ in range(SPEED_REPEAT):
            started = time.perf_counter()
            work()
            samples.append((time.perf_counter() - started) * 1000)
        speeds[name] = _round(percentile(samples, 50))
    return speeds


def machine_speed_text(speed: dict[str, float]) -> str:
    """Return a run's machine speed as one line."""
    return f"fixed Python loop {speed['python_ms']:.1f} ms, fixed query {speed['sql_ms']:.1f} ms"


def page_report_keys() -> dict[str, tuple[str, ...]]:
    """Return, per page of PAGES, the reports it draws (the dashboard draws them all)."""
    from django.apps import apps
    from django.contrib import admin

    from reports.registry import REPORTS

    keys = {}
    for page in PAGES:
        if page.model is None:
            keys[page.key] = tuple(REPORTS)
        else:
            model_admin = admin.site._registry.get(apps.get_model(page.model))
            keys[page.key] = tuple(getattr(model_admin, "report_keys", ()))
    return keys


def ratios(*, results: list[Series], report_keys: dict[str, tuple[str, ...]]) -> list[dict[str, Any]]:
    """Return, per page and period: page vs page without reports, and the raw selectors vs the page."""
    by_key = {(series.kind, series.target, series.period): series for series in results}
    rows = []
    for series in results:
        if series.kind != "page" or series.note:
            continue
        bare = by_key.get(("page-no-reports", series.target, series.period))
        selectors = [by_key.get(("selector", key, series.period)) for key in report_keys.get(series.target, ())]
        raw = (
            sum(s.p50 for s in selectors if s and s.samples_ms)
            if selectors and all(s and s.samples_ms for s in selectors)
            else None
        )
        bare_p50 = bare.p50 if bare and bare.samples_ms else None
        rows.append(
            {
                "page": series.target,
                "period": series.period,
                "page_p50_ms": _round(series.p50),
                "no_reports_p50_ms": _round(bare_p50),
                "page_over_no_reports": _round(series.p50 / bare_p50) if bare_p50 and series.p50 else None,
                "reports_ms": _round(series.p50 - bare_p50) if bare_p50 is not None and series.p50 else None,
                "reports": list(report_keys.get(series.target, ())),
                "raw_selectors_p50_ms": _round(raw),
                "raw_over_page": _round(raw / series.p50) if raw is not None and series.p50 else None,
                "flagged": series.flagged or bool(bare and bare.flagged),
            }
        )
    return rows


def report_ratios(*, results: list[Series]) -> list[dict[str, Any]]:
    """Return, per report and period, its rollup selector's p50 against its raw selector's."""
    raw_by_key = {(series.target, series.period): series for series in results if series.kind == "selector"}
    rows = []
    for series in results:
        if series.kind != "rollup-selector":
            continue
        raw = raw_by_key.get((series.target, series.period))
        rollup_p50 = series.p50
        raw_p50 = raw.p50 if raw else None
        rows.append(
            {
                "report": series.target,
                "period": series.period,
                "rollup_p50_ms": _round(rollup_p50),
                "raw_p50_ms": _round(raw_p50),
                "raw_over_rollup": _round(raw_p50 / rollup_p50) if rollup_p50 and raw_p50 is not None else None,
                "flagged": series.flagged or bool(raw and raw.flagged) or raw is None,
            }
        )
    return rows


def targets_check(
    *,
    vendor: str,
    results: list[Series],
    ratio_rows: list[dict[str, Any]],
    writes: Sequence[WriteSeries] = (),
    baseline_rows: Sequence[dict[str, Any]] = (),
) -> list[dict[str, Any]]:
    """Return each page series, then each write series, against the scale issue's targets for ``vendor``.

    ``baseline_rows`` (page, period, over_baseline), from a run given an earlier one at a smaller
    size, add the flat-with-scale target. A page series of a period other than TARGET_PERIODS, and
    a write series without a target (the writes without rollups), are left out.
    """
    goals = TARGETS.get(vendor, {})
    ratio_by_key = {(row["page"], row["period"]): row for row in ratio_rows}
    over_baseline = {(row["page"], row["period"]): row["over_baseline"] for row in baseline_rows}
    checks = []
    for series in results:
        if series.kind != "page" or series.note or series.period not in TARGET_PERIODS:
            continue
        if series.flagged:
            reason = series.error or f"status {series.status}"
            checks.append({"page": series.target, "period": series.period, "met": False, "misses": [reason]})
            continue
        misses = []
        if "p50_ms" in goals and series.p50 > goals["p50_ms"]:
            misses.append(f"p50 {series.p50:.0f} > {goals['p50_ms']:.0f} ms")
        if "p95_ms" in goals and series.p95 > goals["p95_ms"]:
            misses.append(f"p95 {series.p95:.0f} > {goals['p95_ms']:.0f} ms")
        ratio = ratio_by_key.get((series.target, series.period), {}).get("raw_over_page")
        if "raw_over_page" in goals and ratio is not None and ratio < goals["raw_over_page"]:
            misses.append(f"raw/page {ratio:.1f}x < {goals['raw_over_page']:.0f}x")
        scale = over_baseline.get((series.target, series.period))
        if "over_baseline" in goals and scale is not None and scale > goals["over_baseline"]:
            misses.append(f"{scale:.2f}x the baseline's p50 > {goals['over_baseline']:.1f}x")
        checks.append({"page": series.target, "period": series.period, "met": not misses, "misses": misses})
    for series in writes:
        if series.target not in WRITE_TARGETS:
            continue
        goal, unit = WRITE_TARGETS[series.target]
        if goal not in goals:
            continue
        if series.failed:
            misses = [series.error]
        elif series.rate < goals[goal]:
            misses = [f"{series.rate:,.0f} < {goals[goal]:,.0f} {unit}"]
        else:
            misses = []
        checks.append({"write": series.target, "target": goals[goal], "met": not misses, "misses": misses})
    return checks


def _table(headers: list[str], rows: list[list[str]], align: str) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            str(cell).rjust(width) if kind == "r" else str(cell).ljust(width)
            for cell, width, kind in zip(cells, widths, align, strict=True)
        ).rstrip()

    return "\n".join([line(headers), line(["-" * width for width in widths]), *(line(row) for row in rows)])


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def results_table(results: list[Series]) -> str:
    """Return the timings as a plain-text table."""
    rows = [
        [
            series.kind,
            series.target,
            series.period,
            series.status + ("!" if series.flagged else ""),
            str(len(series.samples_ms)),
            _ms(series.p50),
            _ms(series.p95),
            "-" if series.queries is None else str(series.queries),
            series.note or series.location or series.error[:60],
        ]
        for series in results
    ]
    headers = ["series", "target", "period", "status", "n", "p50 ms", "p95 ms", "queries", "note"]
    return _table(headers, rows, "lllrrrrrl")


def ratios_table(ratio_rows: list[dict[str, Any]]) -> str:
    """Return the within-run ratios as a plain-text table."""
    rows = [
        [
            row["page"],
            row["period"],
            _ms(row["page_p50_ms"]),
            _ms(row["no_reports_p50_ms"]),
            _times(row["page_over_no_reports"]),
            _ms(row["reports_ms"]),
            _ms(row["raw_selectors_p50_ms"]),
            _times(row["raw_over_page"]),
            "!" if row["flagged"] else "",
        ]
        for row in ratio_rows
    ]
    headers = [
        "page",
        "period",
        "page p50",
        "no-reports p50",
        "page/no-reports",
        "reports ms",
        "raw selectors p50",
        "raw/page",
        "flag",
    ]
    return _table(headers, rows, "llrrrrrrl")


def report_ratios_table(report_rows: list[dict[str, Any]]) -> str:
    """Return each report's rollup selector against its raw selector as a plain-text table."""
    rows = [
        [
            row["report"],
            row["period"],
            _ms(row["rollup_p50_ms"]),
            _ms(row["raw_p50_ms"]),
            _times(row["raw_over_rollup"]),
            "!" if row["flagged"] else "",
        ]
        for row in report_rows
    ]
    headers = ["report", "period", "rollup p50", "raw p50", "raw/rollup", "flag"]
    return _table(headers, rows, "llrrrl")


def writes_table(writes: Sequence[WriteSeries]) -> str:
    """Return the write series as a plain-text table."""
    rows = [
        [
            series.target,
            str(series.workers),
            f"{series.seconds:.1f}",
            f"{series.rows:,}",
            "ERR" if series.failed else f"{series.rate:,.0f}",
            _ms(series.p50),
            _ms(series.p95),
            series.error[:60] or series.note,
        ]
        for series in writes
    ]
    headers = ["series", "workers", "seconds", "rows", "rows/s", "p50 ms", "p95 ms", "note"]
    return _table(headers, rows, "lrrrrrrl")


def markdown_table(
    results: list[Series],
    ratio_rows: list[dict[str, Any]],
    writes: Sequence[WriteSeries] = (),
    report_rows: Sequence[dict[str, Any]] = (),
) -> str:
    """Return the pages' timings and ratios, the reports' and the write series as Markdown tables for the README."""
    ratio_by_key = {(row["page"], row["period"]): row for row in ratio_rows}
    bare = {(s.target, s.period): s for s in results if s.kind == "page-no-reports"}
    lines = [
        "| page | period | status | p50 ms | p95 ms | without reports p50 ms | raw selectors p50 ms | raw / page |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for series in results:
        if series.kind != "page" or series.note:
            continue
        ratio = ratio_by_key.get((series.target, series.period), {})
        without = bare.get((series.target, series.period))
        lines.append(
            f"| {series.target} | {series.period} | {series.status} | {_ms(series.p50)} | {_ms(series.p95)} | "
            f"{_ms(without.p50 if without else None)} | {_ms(ratio.get('raw_selectors_p50_ms'))} | "
            f"{_times(ratio.get('raw_over_page'))} |"
        )
    if report_rows:
        lines += [
            "",
            "| report | period | from the rollups p50 ms | raw p50 ms | raw / rollups |",
            "|---|---|---:|---:|---:|",
        ]
        lines += [
            f"| {row['report']} | {row['period']} | {_ms(row['rollup_p50_ms'])} | {_ms(row['raw_p50_ms'])} | "
            f"{_times(row['raw_over_rollup'])} |"
            for row in report_rows
        ]
    if writes:
        lines += [
            "",
            "| write series | workers | seconds | rows | rows/s | call p50 ms | call p95 ms |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {series.target} | {series.workers} | {series.seconds:.1f} | {series.rows:,} | "
            f"{'ERR' if series.failed else f'{series.rate:,.0f}'} | {_ms(series.p50)} | {_ms(series.p95)} |"
            for series in writes
        ]
    return "\n".join(lines)
