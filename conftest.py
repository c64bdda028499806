"""Test-wide wiring."""

from typing import Any

import pytest
from django.core.signals import setting_changed
from django.dispatch import receiver

from reports.rollups import rollups_rebuild


@receiver(setting_changed)
def rollups_follow_the_time_zone(*, setting: str, **kwargs: Any) -> None:
    """Move the rollups to a test's TIME_ZONE (and back), as `rebuild_rollups` does in production.

    The rollups key rows by the local day, so a test that changes TIME_ZONE must recompute them
    before a report reads them; inside the test's transaction, so it is rolled back with it.
    """
    if setting != "TIME_ZONE":
        return
    try:
        rollups_rebuild()
    except RuntimeError as error:
        # A test without database access has no rollups to move.
        if "Database access not allowed" not in str(error):
            raise


@pytest.fixture
def rollups_keep_their_time_zone():
    """Leave the rollups in their zone when a test changes TIME_ZONE (to test `rebuild_rollups` itself)."""
    setting_changed.disconnect(rollups_follow_the_time_zone)
    yield
    setting_changed.connect(rollups_follow_the_time_zone)
