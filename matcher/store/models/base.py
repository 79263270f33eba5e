"""What every table shares: the declarative `Base` with its naming convention, the id and
datetime column types, and the helpers that declare checked columns.

The tables themselves are in the modules beside this one, by subject.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    Enum,
    Integer,
    MetaData,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from matcher.store.errors import InvalidRecord

# Named constraints, so later migrations (batch mode on SQLite) can find and alter them.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Room for a model id: the longest today, a projected ensemble, is 62 characters; revision 0006
# widened the columns from 64 so one more suffix cannot fail on PostgreSQL alone.
MODEL_ID_LENGTH = 128

# 64-bit ids on PostgreSQL; SQLite only auto-increments a column declared INTEGER (also 64-bit).
Id = BigInteger().with_variant(Integer(), "sqlite")

# Table option of every table whose rows have their own id and can be deleted: SQLite then never
# hands out an id again (without it, the next row takes the largest id + 1, the id of the newest
# row deleted), as PostgreSQL's sequences never do. Ids outlive their rows: in index files and
# tombstones, in the audit trail, in clients. Revision 0007.
NO_ID_REUSE = {"sqlite_autoincrement": True}


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes in and out (SQLite would hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise InvalidRecord("datetimes must be timezone-aware")
        return value.astimezone(dt.UTC)

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def enum_type(kind: type[StrEnum]) -> Enum:
    # VARCHAR plus a named CHECK (declared in __table_args__): portable and easy to extend.
    return Enum(
        kind, native_enum=False, create_constraint=False, length=16, validate_strings=True,
        values_callable=lambda members: [m.value for m in members],
    )


def fitting_model_id(model_id: str) -> str:
    # SQLite would store a longer id and PostgreSQL refuse it: refuse it on both, saying why.
    if not 0 < len(model_id) <= MODEL_ID_LENGTH:
        raise InvalidRecord(f"a model id must have 1 to {MODEL_ID_LENGTH} characters, "
                            f"got {len(model_id)}: {model_id[:80]!r}...")
    return model_id


def one_of(column: str, kind: type[StrEnum]) -> CheckConstraint:
    values = ", ".join(f"'{m.value}'" for m in kind)
    return CheckConstraint(f"{column} IN ({values})", name=column)


def position_checks(prefix: str = "") -> tuple[CheckConstraint, ...]:
    lat, lon = f"{prefix}lat", f"{prefix}lon"
    return (
        CheckConstraint(f"{lat} IS NULL OR ({lat} >= -90 AND {lat} <= 90)", name=lat),
        CheckConstraint(f"{lon} IS NULL OR ({lon} >= -180 AND {lon} <= 180)", name=lon),
        CheckConstraint(f"({lat} IS NULL) = ({lon} IS NULL)", name=f"{prefix}lat_lon_together"),
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dt.datetime: UtcDateTime()}
