from django.apps import AppConfig
from django.db.models.signals import post_migrate, pre_migrate


def _rollups_before_migrate(sender: AppConfig, using: str, plan: list | None = None, **kwargs: object) -> None:
    from reports.rollups import rollups_before_migrate

    rollups_before_migrate(using=using, plan=plan)


def _rollups_after_migrate(sender: AppConfig, using: str, **kwargs: object) -> None:
    from reports.rollups import rollups_after_migrate

    rollups_after_migrate(using=using)


class ReportsConfig(AppConfig):
    name = "reports"
    verbose_name = "Reports"

    def ready(self) -> None:
        # Around every migrate (and after a flush): SQLite's triggers are dropped for the migrations
        # and put back after them, and deltas a flush left behind are cleared (see reports.rollups).
        pre_migrate.connect(_rollups_before_migrate, sender=self, dispatch_uid="reports_rollups_before_migrate")
        post_migrate.connect(_rollups_after_migrate, sender=self, dispatch_uid="reports_rollups_after_migrate")
