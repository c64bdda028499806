"""Run the benchmark: ``python -m bench --rows 1000000 [--db postgres|sqlite|URL]`` (see bench/README.md)."""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.database import (
    DEFAULT_POSTGRES_URL,
    RESULTS_DIR,
    BenchDatabase,
    BenchDatabaseError,
    bench_database_from_url,
    bench_database_metadata,
    bench_database_recreate,
)
from bench.dataset import DEFAULT_DAYS, DEFAULT_SEED, scale_for_rows
from bench.measure import TARGET_PERIODS, Options
from bench.writes import DEFAULT_IMPORT_ROWS, DEFAULT_WRITE_SECONDS, WRITERS, WriteOptions

# Only ever used against the benchmark's own database, with DEBUG off as in production.
BENCH_SECRET_KEY = "bench-only-secret-key-never-used-by-a-deployment"  # noqa: S105


def _presets_parse(value: str) -> tuple[str, ...]:
    """Return the target periods, then the presets named in ``value`` (comma-separated) not among them."""
    from reports.periods import PRESETS

    named = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in named if name not in PRESETS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown period {', '.join(unknown)}; choose from {', '.join(PRESETS)}")
    return TARGET_PERIODS + tuple(dict.fromkeys(name for name in named if name not in TARGET_PERIODS))


def arguments_parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Return the command line's options."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--rows", type=int, default=int(os.environ.get("ROWS") or 100_000), help="requests to load")
    parser.add_argument(
        "--db",
        default=os.environ.get("BENCH_DATABASE_URL") or DEFAULT_POSTGRES_URL,
        help=f"database URL, or 'postgres' ({DEFAULT_POSTGRES_URL}) or 'sqlite' (bench/results/bench.sqlite3)",
    )
    parser.add_argument("--reload", action="store_true", help="load again even if the dataset is already there")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--load-only", action="store_true", help="load (if needed) and stop")
    mode.add_argument("--measure-only", action="store_true", help="measure the dataset already loaded, whatever size")
    for name in ("users", "models", "chatbots", "sessions"):
        parser.add_argument(f"--{name}", type=int, help=f"number of {name} (default: scaled from --rows)")
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS, help="days of history, ending now")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--warmup", type=int, default=Options.warmup, help="untimed calls before each series")
    parser.add_argument("--repeat", type=int, default=Options.repeat, help="timed calls per series")
    parser.add_argument("--min-repeat", type=int, default=Options.min_repeat, help="timed calls even past --budget")
    parser.add_argument("--budget", type=float, default=Options.budget, help="seconds per series before stopping")
    parser.add_argument("--timeout", type=float, default=Options.timeout, help="seconds one call may take")
    parser.add_argument(
        "--periods",
        type=_presets_parse,
        default=Options.periods,
        help="comma-separated period presets to time the pages and selectors over, beyond the targets' "
        f"{' and '.join(TARGET_PERIODS)} (e.g. today,last-7-days)",
    )
    parser.add_argument(
        "--write-seconds",
        type=float,
        default=DEFAULT_WRITE_SECONDS,
        help="seconds the concurrent writers of request_cost_record run, after the reads (0: none)",
    )
    parser.add_argument("--writers", type=int, default=WRITERS, help="concurrent writer processes")
    parser.add_argument(
        "--import-rows",
        type=int,
        default=DEFAULT_IMPORT_ROWS,
        help="rows of the bulk import through request_costs_import, after the writers (0: none)",
    )
    parser.add_argument(
        "--writes-without-rollups",
        action="store_true",
        help="run the write series again with the request table's rollup triggers off, as their ceiling "
        "(PostgreSQL; the benchmark's database only)",
    )
    parser.add_argument("--output", type=Path, help="JSON file to write (default: bench/results/<timestamp>.json)")
    parser.add_argument("--baseline", type=Path, help="an earlier JSON result to compare page timings with")
    return parser.parse_args(argv)


def django_setup(*, database: BenchDatabase) -> None:
    """Configure Django (config.settings, DEBUG off) against the benchmark database."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["DATABASE_URL"] = database.url
    os.environ["DEBUG"] = "0"
    os.environ["SECRET_KEY"] = os.environ.get("BENCH_SECRET_KEY") or BENCH_SECRET_KEY
    # django.test.Client sends requests as "testserver".
    os.environ["ALLOWED_HOSTS"] = "testserver"
    import django

    django.setup()


def _migration_names() -> list[str]:
    from django.db.migrations.loader import MigrationLoader

    return sorted(f"{app}.{name}" for app, name in MigrationLoader(None, ignore_no_migrations=True).disk_migrations)


def _git_revision() -> dict[str, Any]:
    git = shutil.which("git")
    if git is None:
        return {}
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(  # noqa: S603
            [git, "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(  # noqa: S603
            [git, "status", "--porcelain"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {"commit": commit, "dirty": bool(dirty)}


def dataset_ensure(*, args: argparse.Namespace, database: BenchDatabase) -> dict[str, Any]:
    """Load the requested dataset unless the database already holds it; return its metadata."""
    from django.core.management import call_command

    from bench.load import POST_LOAD_COMMANDS, dataset_load

    scale = scale_for_rows(
        rows=args.rows,
        users=args.users,
        models=args.models,
        chatbots=args.chatbots,
        sessions=args.sessions,
        days=args.days,
        seed=args.seed,
    )
    stored = bench_database_metadata(database=database)
    if args.measure_only:
        if stored is None:
            raise BenchDatabaseError(f"{database.label} holds no dataset: run without --measure-only first.")
        call_command("migrate", interactive=False, verbosity=0)
        return stored
    if stored is not None and stored.get("scale") == scale.as_dict() and not args.reload:
        print(f"Reusing the dataset in {database.label} (loaded {stored['loaded_at']}); --reload to load again.")
        call_command("migrate", interactive=False, verbosity=0)
        new = sorted(set(_migration_names()) - set(stored.get("migrations", [])))
        if new:
            print(f"  note: migrations added since the load: {', '.join(new)}; --reload if they change the data.")
        return stored
    reason = "--reload" if stored is not None and args.reload else "no dataset" if stored is None else "another size"
    print(f"Loading {scale.rows:,} requests into {database.label} ({reason}): {scale}")
    bench_database_recreate(database=database)
    started = time.perf_counter()
    call_command("migrate", interactive=False, verbosity=0)
    print(f"  migrate: {time.perf_counter() - started:.1f} s")
    result = dataset_load(database=database, scale=scale, migrations=_migration_names())
    counts = ", ".join(f"{label.split('.')[1]} {count:,}" for label, count in result.counts.items())
    print(f"  loaded {counts}")
    print(
        f"  {result.total_seconds:.1f} s: {result.requests_per_second:,.0f} requests/s, "
        f"{result.rows_per_second:,.0f} rows/s (all tables, indexes and ANALYZE included)"
        + (f"; then ran {', '.join(POST_LOAD_COMMANDS)}" if POST_LOAD_COMMANDS else "")
    )
    return bench_database_metadata(database=database) or {}


def _baseline_compare(*, baseline: dict[str, Any], results: list[Any]) -> list[dict[str, Any]]:
    earlier = {(s["kind"], s["target"], s["period"]): s for s in baseline.get("series", [])}
    rows = []
    for series in results:
        before = earlier.get((series.kind, series.target, series.period))
        if series.kind != "page" or not series.samples_ms or not before or not before.get("p50_ms"):
            continue
        rows.append(
            {
                "page": series.target,
                "period": series.period,
                "p50_ms": round(series.p50, 2),
                "baseline_p50_ms": before["p50_ms"],
                "over_baseline": round(series.p50 / before["p50_ms"], 2),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    """Load (if needed), measure the reads, then the writes; return 1 when a page, selector or write failed."""
    args = arguments_parse(argv)
    # Progress lines as they happen, also when the output goes to a file.
    sys.stdout.reconfigure(line_buffering=True)
    try:
        database = bench_database_from_url(url=args.db)
        django_setup(database=database)
        dataset = dataset_ensure(args=args, database=database)
    except BenchDatabaseError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    if args.load_only:
        return 0

    import django

    from bench import measure, writes

    # Each of the measuring options is the command-line option of the same name.
    options = Options(**{option.name: getattr(args, option.name) for option in fields(Options)})
    started_at = datetime.now(UTC)
    load_before = os.getloadavg()
    scale = dataset.get("scale", {})
    print(
        f"Measuring {database.label}: {scale.get('rows', 0):,} requests, data {dataset.get('first_day')} to "
        f"{dataset.get('end')}; load average {load_before[0]:.2f} on {os.cpu_count()} CPUs"
    )
    speed_before = measure.machine_speed()
    print(f"Machine speed: {measure.machine_speed_text(speed_before)}")
    results = measure.measure(options=options)
    write_options = WriteOptions(
        seconds=args.write_seconds,
        import_rows=args.import_rows,
        writers=args.writers,
        seed=args.seed,
        without_rollups=args.writes_without_rollups,
    )
    write_results, cleanup = writes.measure_writes(options=write_options)
    report_keys = measure.page_report_keys()
    ratio_rows = measure.ratios(results=results, report_keys=report_keys)
    report_rows = measure.report_ratios(results=results)
    baseline = json.loads(args.baseline.read_text()) if args.baseline else None
    compared = _baseline_compare(baseline=baseline, results=results) if baseline else []
    checks = measure.targets_check(
        vendor=database.vendor, results=results, ratio_rows=ratio_rows, writes=write_results, baseline_rows=compared
    )
    load_after = os.getloadavg()
    speed_after = measure.machine_speed()

    print()
    print(measure.results_table(results))
    print()
    print("Ratios within this run (p50): page / page without reports, and the raw selectors' sum / page")
    print(measure.ratios_table(ratio_rows))
    print()
    print("Each report within this run (p50): as the pages compute it from the rollups, and from the raw rows")
    print(measure.report_ratios_table(report_rows))
    if compared:
        print()
        print(f"Against {args.baseline} (p50 now / p50 then; the scale target is at most 1.5x):")
        for row in compared:
            print(f"  {row['page']:<16} {row['period']:<13} {row['over_baseline']:.2f}x")
        speed_then = (baseline.get("machine") or {}).get("speed_before")
        if speed_then:
            print(
                "  The machine, this run's start over the baseline's: "
                f"fixed Python loop {speed_before['python_ms'] / speed_then['python_ms']:.2f}x, "
                f"fixed query {speed_before['sql_ms'] / speed_then['sql_ms']:.2f}x"
            )
    if write_results:
        print()
        print(f"Writes, after the reads (the {cleanup['rows_deleted']:,} rows written were deleted again):")
        print(measure.writes_table(write_results))
    page_checks = [check for check in checks if "page" in check]
    write_checks = [check for check in checks if "write" in check]
    missed = [check for check in checks if not check["met"]]
    print()
    print(
        f"Targets ({database.vendor}): {sum(c['met'] for c in page_checks)} of {len(page_checks)} page series met"
        + (f", {sum(c['met'] for c in write_checks)} of {len(write_checks)} write series" if write_checks else "")
        + "".join(
            f"\n  {c['page']} {c['period']}: {'; '.join(c['misses'])}"
            if "page" in c
            else f"\n  write {c['write']}: {'; '.join(c['misses'])}"
            for c in missed
        )
    )
    flagged = [series for series in results if series.flagged]
    if flagged:
        print(f"Flagged ({len(flagged)}): a non-200 page or an error; its timing is not of the page it names.")
    print(f"Load average {load_before[0]:.2f} before, {load_after[0]:.2f} after.")
    before, after = measure.machine_speed_text(speed_before), measure.machine_speed_text(speed_after)
    print(f"Machine speed before: {before}; after: {after}.")

    finished_at = datetime.now(UTC)
    output = args.output or RESULTS_DIR / f"{started_at:%Y-%m-%dT%H-%M-%SZ}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": finished_at.isoformat(timespec="seconds"),
        "database": {"vendor": database.vendor, "name": database.name},
        "dataset": dataset,
        "options": {**vars(options), "writes": asdict(write_options)},
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": load_after,
            "speed_before": speed_before,
            "speed_after": speed_after,
            "python": platform.python_version(),
            "django": django.get_version(),
            "platform": platform.platform(),
        },
        "git": _git_revision(),
        "series": [series.as_dict() for series in results],
        "ratios": ratio_rows,
        "report_ratios": report_rows,
        "writes": [series.as_dict() for series in write_results],
        "writes_cleanup": cleanup,
        "targets": checks,
        "baseline": {"file": str(args.baseline), "pages": compared} if baseline else None,
        "markdown": measure.markdown_table(results, ratio_rows, write_results, report_rows),
    }
    output.write_text(json.dumps(document, indent=2) + "\n")
    print(f"Wrote {output}")
    return 1 if any(series.failed for series in [*results, *write_results]) else 0


if __name__ == "__main__":
    sys.exit(main())
