import pytest

from bench.__main__ import arguments_parse
from bench.database import DEFAULT_SQLITE_PATH, BenchDatabaseError, bench_database_from_url
from bench.measure import (
    TARGET_PERIODS,
    Options,
    Series,
    markdown_table,
    measure,
    percentile,
    periods_measured,
    ratios,
    report_ratios,
    reports_off,
    targets_check,
)
from reports.registry import REPORTS


def test_percentile_is_nearest_rank():
    samples = [float(n) for n in range(20, 0, -1)]
    # 20 samples: p50 is the 10th smallest, p95 the 19th.
    assert percentile(samples, 50) == 10.0
    assert percentile(samples, 95) == 19.0
    # 5 samples: p95 is the slowest (rank ceil(4.75) = 5).
    assert percentile([3.0, 1.0, 2.0, 5.0, 4.0], 95) == 5.0
    assert percentile([], 50) is None


def _series(kind, target, period, samples, statuses=()):
    return Series(kind=kind, target=target, period=period, samples_ms=list(samples), statuses=list(statuses))


def test_ratios_compare_page_with_its_bare_page_and_its_selectors():
    results = [
        _series("page", "users", "all-time", [40.0, 40.0, 40.0], [200] * 3),
        _series("page-no-reports", "users", "all-time", [10.0, 10.0, 10.0], [200] * 3),
        _series("selector", "top_users_by_cost", "all-time", [300.0]),
        _series("selector", "average_tokens_per_request", "all-time", [100.0]),
    ]
    (row,) = ratios(results=results, report_keys={"users": ("top_users_by_cost", "average_tokens_per_request")})
    # 40 / 10 = 4x; the reports add 40 - 10 = 30 ms; the raw selectors (300 + 100) / 40 = 10x.
    assert row["page_over_no_reports"] == 4.0
    assert row["reports_ms"] == 30.0
    assert row["raw_selectors_p50_ms"] == 400.0
    assert row["raw_over_page"] == 10.0
    assert row["flagged"] is False
    (check,) = targets_check(vendor="postgresql", results=results, ratio_rows=[row])
    assert check == {"page": "users", "period": "all-time", "met": False, "misses": ["raw/page 10.0x < 50x"]}


def test_redirected_and_timed_out_series_are_flagged_not_failed():
    redirected = _series("page", "users", "last-30-days", [2.0], [302])
    timed_out = Series(kind="page", target="users", period="all-time", error="timeout: cancelled after 60 s")
    broken = _series("page", "users", "all-time", [2.0], [500])
    assert redirected.flagged and not redirected.failed
    assert timed_out.flagged and not timed_out.failed and timed_out.status == "TIMEOUT"
    assert broken.failed


def test_reports_off_turns_off_reports_headline_and_charts_and_restores_the_class_attributes():
    class Admin:
        report_keys = ("top_users_by_cost",)
        show_usage_overview = True

    model_admin = Admin()
    with reports_off(model_admin):
        assert model_admin.report_keys == ()
        assert model_admin.show_usage_overview is False
    assert model_admin.report_keys == ("top_users_by_cost",)
    assert model_admin.show_usage_overview is True
    assert "report_keys" not in vars(model_admin)
    assert "show_usage_overview" not in vars(model_admin)


def test_reports_off_restores_an_instance_attribute():
    class Admin:
        report_keys = ()
        show_usage_overview = False

    model_admin = Admin()
    model_admin.report_keys = ("top_free_models",)

    with reports_off(model_admin):
        assert model_admin.report_keys == ()

    assert vars(model_admin) == {"report_keys": ("top_free_models",)}


@pytest.mark.parametrize(
    "url",
    [
        "postgres://postgres@127.0.0.1:5432/test",
        "postgres://postgres@127.0.0.1:5432/test_test",
        "postgres://postgres@127.0.0.1:5432/postgres",
        "sqlite:////tmp/test_db.sqlite3",
    ],
)
def test_databases_of_the_test_suites_are_refused(url):
    with pytest.raises(BenchDatabaseError, match="Refusing"):
        bench_database_from_url(url=url)


def test_the_project_database_is_refused(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/app")
    with pytest.raises(BenchDatabaseError, match="DATABASE_URL"):
        bench_database_from_url(url="postgres://postgres@127.0.0.1/app")


def test_aliases_name_the_default_databases(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert bench_database_from_url(url="sqlite").name == str(DEFAULT_SQLITE_PATH)
    postgres = bench_database_from_url(url="postgres")
    assert (postgres.vendor, postgres.name) == ("postgresql", "bench")


def test_a_page_slower_at_scale_than_its_baseline_allows_misses_the_flat_with_scale_target():
    results = [
        _series("page", "dashboard", "all-time", [40.0], [200]),
        _series("page", "dashboard", "last-30-days", [70.0], [200]),
    ]
    # 40 / 30 = 1.33x is within 1.5x; 70 / 36 = 1.94x is not.
    compared = [
        {"page": "dashboard", "period": "all-time", "over_baseline": 1.33},
        {"page": "dashboard", "period": "last-30-days", "over_baseline": 1.94},
    ]

    checks = targets_check(vendor="postgresql", results=results, ratio_rows=[], baseline_rows=compared)

    assert [check["met"] for check in checks] == [True, False]
    assert checks[1]["misses"] == ["1.94x the baseline's p50 > 1.5x"]
    # Without a baseline run, scale is not checked.
    assert all(check["met"] for check in targets_check(vendor="postgresql", results=results, ratio_rows=[]))
    # SQLite's targets have no scale figure.
    assert all(
        check["met"] for check in targets_check(vendor="sqlite", results=results, ratio_rows=[], baseline_rows=compared)
    )


@pytest.mark.django_db
def test_the_machine_speed_times_its_fixed_work_on_the_database():
    from django.db import connection

    from bench.measure import SPEED_QUERY, machine_speed, machine_speed_text

    with connection.cursor() as cursor:
        cursor.execute(SPEED_QUERY)
        # The query's work is fixed: it counts to 100,000 on either database.
        assert cursor.fetchone()[0] == 100_000
    speed = machine_speed()

    assert set(speed) == {"python_ms", "sql_ms"}
    assert all(value > 0 for value in speed.values())
    assert machine_speed_text({"python_ms": 52.04, "sql_ms": 7.0}) == "fixed Python loop 52.0 ms, fixed query 7.0 ms"


def test_the_periods_option_adds_presets_after_the_targets_and_refuses_an_unknown_one(capsys):
    assert arguments_parse([]).periods == TARGET_PERIODS == ("all-time", "last-30-days")
    assert arguments_parse(["--periods", "today, last-30-days,today,last-7-days"]).periods == (
        "all-time",
        "last-30-days",
        "today",
        "last-7-days",
    )
    with pytest.raises(SystemExit):
        arguments_parse(["--periods", "today,yesterday"])
    assert "unknown period yesterday; choose from today, last-7-days" in capsys.readouterr().err
    # All time is the page without a period parameter, and the selectors' ALL_TIME.
    assert periods_measured(presets=("all-time", "today")) == (
        ("all-time", {}, None),
        ("today", {"period": "today"}, "today"),
    )


def test_pages_of_a_period_beyond_the_targets_are_reported_but_not_checked():
    results = [
        _series("page", "users", "all-time", [30.0], [200]),
        _series("page", "users", "last-30-days", [90.0], [200]),
        _series("page", "users", "today", [500.0], [200]),
    ]

    checks = targets_check(vendor="postgresql", results=results, ratio_rows=[])

    assert [(check["period"], check["met"]) for check in checks] == [("all-time", True), ("last-30-days", False)]
    # Its figures are reported like the others'.
    assert [row["period"] for row in ratios(results=results, report_keys={})] == ["all-time", "last-30-days", "today"]
    assert "| users | today | 200 | 500.0 |" in markdown_table(results, [])


def test_report_ratios_compare_each_report_from_the_rollups_with_the_same_report_from_the_raw_rows():
    results = [
        _series("rollup-selector", "top_users_by_cost", "all-time", [4.0, 5.0, 6.0]),
        _series("selector", "top_users_by_cost", "all-time", [900.0, 1000.0, 1100.0]),
        _series("rollup-selector", "top_users_by_cost", "last-30-days", [8.0]),
        # The raw selector ran past its timeout: no figure, and the row says so.
        Series(
            kind="selector", target="top_users_by_cost", period="last-30-days", error="timeout: cancelled after 60 s"
        ),
    ]

    rows = report_ratios(results=results)

    assert rows == [
        {
            "report": "top_users_by_cost",
            "period": "all-time",
            "rollup_p50_ms": 5.0,
            "raw_p50_ms": 1000.0,
            "raw_over_rollup": 200.0,
            "flagged": False,
        },
        {
            "report": "top_users_by_cost",
            "period": "last-30-days",
            "rollup_p50_ms": 8.0,
            "raw_p50_ms": None,
            "raw_over_rollup": None,
            "flagged": True,
        },
    ]
    table = markdown_table(results, [], report_rows=rows)
    assert "| top_users_by_cost | all-time | 5.0 | 1000.0 | 200.00x |" in table
    assert "| top_users_by_cost | last-30-days | 8.0 | - | - |" in table
    # The page targets do not read them.
    assert targets_check(vendor="postgresql", results=results, ratio_rows=[]) == []


@pytest.mark.django_db
def test_measure_times_each_report_from_the_rollups_and_from_the_raw_rows():
    results = measure(options=Options(warmup=0, repeat=1, min_repeat=1), echo=lambda line: None)

    selectors = {(s.kind, s.target, s.period): s for s in results if s.kind in ("rollup-selector", "selector")}
    top_users = [selectors[kind, "top_users_by_cost", "last-30-days"] for kind in ("rollup-selector", "selector")]
    assert [series.url for series in top_users] == [
        "reports.selectors.top_users_by_cost",
        "reports.raw_selectors.top_users_by_cost",
    ]
    assert all(len(series.samples_ms) == 1 and not series.flagged for series in selectors.values())
    # Every report of the registry, both ways, over both periods of the targets.
    assert {target for _, target, _ in selectors} == set(REPORTS)
    assert len(selectors) == 2 * 2 * len(REPORTS)
    assert all(series.statuses == [200] for series in results if series.kind == "page")
