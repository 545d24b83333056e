"""The triggers, backfill and reconcile check of `payment_hours` (`adapters/db/tables_rollups.py`):
per organisation, currency and UTC hour, the card attempts that settled (succeeded or failed) by
their creation, the succeeded ones among them, and the money captured by the instant it settled.

An hour, not a day: the dashboard's buckets start at local midnights, which are whole UTC hours in
every zone with a whole-hour offset, so its sums are exact sums of these rows (in a zone with a
half-hour offset the dashboard reads the attempts and captures themselves). Migration 0024."""

from __future__ import annotations

from typing import Final

from fiscus.adapters.db.rollup_triggers import pg_delta_function

_KEYS = ("organization_id", "currency", "hour")
_VALUES = ("attempts", "succeeded", "captured_minor")

_SQLITE_HOUR = "(substr({at}, 1, 13) || ':00:00.000000')"
_PG_HOUR = "(date_trunc('hour', {at} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')"

_ATTEMPT_COUNTS = "{r}.provider <> 'external' AND {r}.status IN ('succeeded', 'failed')"
_CAPTURE_COUNTS = "{r}.status = 'succeeded' AND {r}.settled_at IS NOT NULL"
_CAPTURE_CURRENCY = "(SELECT a.currency FROM payment_attempts a WHERE a.id = {r}.attempt_id)"


def _attempt(r: str, hour: str, sign: str) -> tuple[str, str, str, str, str, str]:
    """(organization, currency, hour, attempts, succeeded, captured) of an attempt row."""
    ok = f"CASE WHEN {r}.status = 'succeeded' THEN {sign}1 ELSE 0 END"
    return (f"{r}.organization_id", f"{r}.currency", hour.format(at=f"{r}.created_at"), f"{sign}1", ok, "0")


def _capture(r: str, hour: str, sign: str) -> tuple[str, str, str, str, str, str]:
    return (
        f"{r}.organization_id",
        _CAPTURE_CURRENCY.format(r=r),
        hour.format(at=f"{r}.settled_at"),
        "0",
        "0",
        f"{sign}{r}.amount_minor",
    )


def _sqlite_apply(row: tuple[str, ...]) -> str:
    org, cur, hour, attempts, ok, captured = row
    match = f"organization_id = {org} AND currency = {cur} AND hour = {hour}"
    return (
        f"UPDATE payment_hours SET attempts = attempts + {attempts}, succeeded = succeeded + {ok}, "
        f"captured_minor = captured_minor + {captured} WHERE {match};\n"
        f"INSERT INTO payment_hours (organization_id, currency, hour, attempts, succeeded, captured_minor) "
        f"SELECT {org}, {cur}, {hour}, {attempts}, {ok}, {captured} "
        f"WHERE NOT EXISTS (SELECT 1 FROM payment_hours WHERE {match});\n"
    )


def _sqlite_triggers(table: str, watched: str, counts: str, row: object) -> list[str]:
    make = row  # (r, hour, sign) -> values
    assert callable(make)
    name = f"payment_hours_{table.removeprefix('payment_')}"
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in watched.split(", "))
    return [
        f"CREATE TRIGGER {name}_insert AFTER INSERT ON {table} WHEN {counts.format(r='NEW')} BEGIN\n"
        + _sqlite_apply(make("NEW", _SQLITE_HOUR, ""))
        + "END",
        f"CREATE TRIGGER {name}_update_old AFTER UPDATE OF {watched} ON {table} "
        f"WHEN ({changed}) AND {counts.format(r='OLD')} BEGIN\n"
        + _sqlite_apply(make("OLD", _SQLITE_HOUR, "-"))
        + "END",
        f"CREATE TRIGGER {name}_update_new AFTER UPDATE OF {watched} ON {table} "
        f"WHEN ({changed}) AND {counts.format(r='NEW')} BEGIN\n"
        + _sqlite_apply(make("NEW", _SQLITE_HOUR, ""))
        + "END",
    ]


_ATTEMPT_WATCHED = "organization_id, currency, status, provider, created_at"
_CAPTURE_WATCHED = "organization_id, attempt_id, status, settled_at, amount_minor"

SQLITE_TRIGGERS: Final = [
    *_sqlite_triggers("payment_attempts", _ATTEMPT_WATCHED, _ATTEMPT_COUNTS, _attempt),
    *_sqlite_triggers("payment_captures", _CAPTURE_WATCHED, _CAPTURE_COUNTS, _capture),
]
SQLITE_DROP: Final = [
    f"DROP TRIGGER payment_hours_{t}_{e}"
    for t in ("attempts", "captures")
    for e in ("insert", "update_old", "update_new")
]


def _select(row: tuple[str, ...], source: str, where: str) -> str:
    named = ", ".join(f"{v} AS {c}" for v, c in zip(row, (*_KEYS, *_VALUES), strict=True))
    return f"SELECT {named} FROM {source} WHERE {where}"


def _pg_delta(make: object, counts: str, rows: str, sign: str) -> str:
    assert callable(make)
    return _select(make(rows, _PG_HOUR, sign), rows, counts.format(r=rows))


def _pg_function(name: str, make: object, counts: str, added: bool, removed: bool) -> str:
    parts = ([_pg_delta(make, counts, "new_rows", "")] if added else []) + (
        [_pg_delta(make, counts, "old_rows", "-")] if removed else []
    )
    return pg_delta_function(name, "payment_hours", _KEYS, _VALUES, " UNION ALL ".join(parts))


def _pg_statements(table: str, make: object, counts: str) -> list[str]:
    name = f"payment_hours_{table.removeprefix('payment_')}"
    return [
        _pg_function(f"{name}_insert", make, counts, True, False),
        _pg_function(f"{name}_update", make, counts, True, True),
        f"CREATE TRIGGER {name}_insert AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {name}_insert()",
        f"CREATE TRIGGER {name}_update AFTER UPDATE ON {table} "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {name}_update()",
    ]


PG_STATEMENTS: Final = [
    *_pg_statements("payment_attempts", _attempt, _ATTEMPT_COUNTS),
    *_pg_statements("payment_captures", _capture, _CAPTURE_COUNTS),
]
PG_DROP: Final = [
    stmt
    for t in ("attempts", "captures")
    for e in ("insert", "update")
    for stmt in (
        f"DROP TRIGGER payment_hours_{t}_{e} ON payment_{t}",
        f"DROP FUNCTION payment_hours_{t}_{e}()",
    )
]


def _expected_rows(postgres: bool) -> str:
    hour = _PG_HOUR if postgres else _SQLITE_HOUR
    return " UNION ALL ".join(
        (
            _select(_attempt("a", hour, ""), "payment_attempts a", _ATTEMPT_COUNTS.format(r="a")),
            _select(_capture("c", hour, ""), "payment_captures c", _CAPTURE_COUNTS.format(r="c")),
        )
    )


_SUMS = ", ".join(f"sum({v})" for v in _VALUES)
_NONZERO = " OR ".join(f"sum({v}) <> 0" for v in _VALUES)


def backfill(postgres: bool) -> str:
    """Fills `payment_hours` from the attempts and captures (the migration)."""
    keys = ", ".join(_KEYS)
    return (
        f"INSERT INTO payment_hours ({keys}, {', '.join(_VALUES)}) "
        f"SELECT {keys}, {_SUMS} FROM ({_expected_rows(postgres)}) AS x GROUP BY {keys} HAVING {_NONZERO}"
    )


def check(postgres: bool) -> str:
    """The (organisation, currency, hour) keys whose stored sums differ from the recomputed ones
    (`fiscus reconcile`: no rows when the triggers kept them)."""
    keys = ", ".join(_KEYS)
    stored = f"SELECT {keys}, -attempts, -succeeded, -captured_minor FROM payment_hours"
    return (
        f"SELECT {keys}, {', '.join(f'sum({v}) AS {v}_off' for v in _VALUES)} "
        f"FROM ({_expected_rows(postgres)} UNION ALL {stored}) AS x GROUP BY {keys} HAVING {_NONZERO}"
    )
