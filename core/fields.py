"""Model fields shared by the apps."""

from decimal import Decimal
from typing import Any

from django.core import exceptions
from django.db import models


class ExactDecimalField(models.DecimalField):
    """Store a decimal exactly on every database, so that SUM() in SQL is exact too.

    PostgreSQL keeps it as ``numeric(max_digits, decimal_places)``. SQLite has no exact
    decimal type (Django's ``DecimalField`` becomes a REAL there, and SUM() of REALs drifts),
    so it is stored as a 64-bit integer count of ``10**-decimal_places`` units: 0.1 + 0.2 is
    then 0.3, and a million costs of 0.000000123 sum to exactly 0.123. On SQLite a value or a
    SUM() beyond 2**63 units raises an overflow error instead of losing precision.
    """

    def get_internal_type(self) -> str:
        # Not "DecimalField": SQLite's backend would turn the stored integers into floats.
        return "ExactDecimalField"

    def db_type(self, connection: Any) -> str:
        if connection.vendor == "sqlite":
            return "integer"
        return f"numeric({self.max_digits}, {self.decimal_places})"

    def cast_db_type(self, connection: Any) -> str:
        return self.db_type(connection)

    def get_db_prep_value(self, value: Any, connection: Any, prepared: bool = False) -> Any:
        value = self.to_python(value)
        if value is None:
            return None
        units = value.scaleb(self.decimal_places)
        # Checked on every database: PostgreSQL's numeric would otherwise round the value silently.
        if units != units.to_integral_value():
            raise exceptions.ValidationError(
                f"{value} has more than {self.decimal_places} decimal places.", code="max_decimal_places"
            )
        if connection.vendor != "sqlite":
            return value
        return int(units)

    def get_db_prep_save(self, value: Any, connection: Any) -> Any:
        return self.get_db_prep_value(value, connection)

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Decimal | None:
        if value is None:
            return None
        if connection.vendor == "sqlite":
            if isinstance(value, float):
                # Only an expression mixing this column with a float gets here; refuse to guess.
                raise TypeError("An ExactDecimalField expression returned a float on SQLite.")
            return Decimal(int(value)).scaleb(-self.decimal_places)
        return Decimal(value)
