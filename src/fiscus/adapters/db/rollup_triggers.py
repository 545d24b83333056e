"""The SQL of the triggers that keep `document_sums` and `charge_recoveries`
(`adapters/db/tables_rollups.py`), their backfill, and the statements `fiscus reconcile` runs to check
them. Used by migration 0024 (which must not change once released: a later change of these rules is a
new migration with its own copy).

NULL dates are keyed as `NO_DATE` (0001-01-01) so that a key is a plain equality on both databases
(an index cannot serve `IS NOT DISTINCT FROM` on PostgreSQL); readers map it back to None."""

from __future__ import annotations

from typing import Final

NO_DATE: Final = "0001-01-01"
FOLD_ABOVE: Final = 1
"""A statement folds each key it touched as soon as that key has more than one row: the readers scan a
row per key (measured at 8, the dashboard's PostgreSQL reads scanned up to eight delta rows per hour of
payments). Folding costs a count, a delete and an insert per touched key, a few per statement."""
FOLD_LOCK: Final = 27_0001
"""First key of the PostgreSQL advisory lock a statement holds while folding a key's delta rows."""

_KEYS = ("organization_id", "currency", "type", "status", "issue_date", "due_date")


def _owed(r: str) -> str:
    return (
        f"({r}.total_minor - {r}.amount_paid_minor + {r}.amount_refunded_minor - {r}.amount_credited_minor)"
    )


def _due(r: str) -> str:
    """A document's amount due as the console's totals define it (never below 0)."""
    return (
        f"(CASE WHEN {r}.type <> 'credit_note' AND {r}.status IN ('open', 'uncollectible') "
        f"AND {_owed(r)} > 0 THEN {_owed(r)} ELSE 0 END)"
    )


def _key_values(r: str) -> str:
    return (
        f"{r}.organization_id, {r}.currency, {r}.type, {r}.status, "
        f"COALESCE({r}.issue_date, '{NO_DATE}'), COALESCE({r}.due_date, '{NO_DATE}')"
    )


def _sqlite_match(r: str) -> str:
    return (
        f"organization_id = {r}.organization_id AND currency = {r}.currency AND type = {r}.type "
        f"AND status = {r}.status AND issue_date = COALESCE({r}.issue_date, '{NO_DATE}') "
        f"AND due_date = COALESCE({r}.due_date, '{NO_DATE}')"
    )


def _sqlite_add(r: str) -> str:
    return (
        f"UPDATE document_sums SET n = n + 1, total_minor = total_minor + {r}.total_minor, "
        f"due_minor = due_minor + {_due(r)} WHERE {_sqlite_match(r)};\n"
        f"INSERT INTO document_sums ({', '.join(_KEYS)}, n, total_minor, due_minor) "
        f"SELECT {_key_values(r)}, 1, {r}.total_minor, {_due(r)} "
        f"WHERE NOT EXISTS (SELECT 1 FROM document_sums WHERE {_sqlite_match(r)});\n"
    )


def _sqlite_remove(r: str) -> str:
    return (
        f"UPDATE document_sums SET n = n - 1, total_minor = total_minor - {r}.total_minor, "
        f"due_minor = due_minor - {_due(r)} WHERE {_sqlite_match(r)};\n"
    )


_WATCHED = (
    "organization_id",
    "currency",
    "type",
    "status",
    "issue_date",
    "due_date",
    "total_minor",
    "amount_paid_minor",
    "amount_refunded_minor",
    "amount_credited_minor",
)
_CHANGED = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in _WATCHED)

_FIRST_FAILED = """INSERT INTO charge_recoveries
    (organization_id, currency, document_id, attempt_id, created_at, recovered)
SELECT {r}.organization_id, {r}.currency, {r}.document_id, {r}.id, {r}.created_at, 0
WHERE {r}.status = 'failed' AND {r}.provider <> 'external'
  AND NOT EXISTS (SELECT 1 FROM payment_attempts e
                  WHERE e.document_id = {r}.document_id AND e.provider <> 'external' AND e.id < {r}.id)
  AND NOT EXISTS (SELECT 1 FROM charge_recoveries x WHERE x.attempt_id = {r}.id);
"""

_PAID = """CASE WHEN EXISTS (SELECT 1 FROM payment_attempts p
                  WHERE p.document_id = {doc} AND p.status = 'succeeded')
       OR EXISTS (SELECT 1 FROM payment_attempts p JOIN documents i ON i.id = p.document_id
                  WHERE i.converted_from_id = {doc} AND p.status = 'succeeded')
     THEN 1 ELSE 0 END"""
"""Whether a document was paid by an attempt: on itself, or on the invoice it (a proforma) became."""

_RECOMPUTE = (
    "UPDATE charge_recoveries SET recovered = "
    + _PAID.format(doc="charge_recoveries.document_id")
    + """
WHERE document_id = {r}.document_id
   OR document_id = (SELECT converted_from_id FROM documents WHERE id = {r}.document_id);
"""
)

_NOT_FAILED = "DELETE FROM charge_recoveries WHERE attempt_id = {r}.id AND {r}.status <> 'failed';\n"

SQLITE_TRIGGERS: Final = [
    "CREATE TRIGGER document_sums_insert AFTER INSERT ON documents BEGIN\n" + _sqlite_add("NEW") + "END",
    "CREATE TRIGGER document_sums_delete AFTER DELETE ON documents BEGIN\n" + _sqlite_remove("OLD") + "END",
    f"CREATE TRIGGER document_sums_update AFTER UPDATE ON documents WHEN {_CHANGED} BEGIN\n"
    + _sqlite_remove("OLD")
    + _sqlite_add("NEW")
    + "END",
    "CREATE TRIGGER charge_recoveries_insert AFTER INSERT ON payment_attempts BEGIN\n"
    + _FIRST_FAILED.format(r="NEW")
    + _RECOMPUTE.format(r="NEW")
    + "END",
    "CREATE TRIGGER charge_recoveries_update AFTER UPDATE OF status ON payment_attempts "
    "WHEN OLD.status IS NOT NEW.status BEGIN\n"
    + _NOT_FAILED.format(r="NEW")
    + _FIRST_FAILED.format(r="NEW")
    + _RECOMPUTE.format(r="NEW")
    + "END",
]


def _pg_delta(rows: str, sign: str) -> str:
    return (
        f"SELECT {_key_values(rows)}, {sign}1::bigint, {sign}{rows}.total_minor, {sign}{_due(rows)} "
        f"FROM {rows}"
    )


_DELTA_COLUMNS = "(organization_id, currency, type, status, issue_date, due_date, n, t, d)"


def pg_delta_function(
    name: str, table: str, keys: tuple[str, ...], values: tuple[str, ...], delta: str
) -> str:
    """A statement-level trigger function that appends the statement's signed deltas (`delta`: a
    SELECT of the keys then the values, in order) to `table`, one row per key, then folds each touched
    key's rows into one when there are more than `FOLD_ABOVE` of them and no other transaction is
    folding that key (a try-lock: nobody waits). Writers append and never update a shared row."""
    key_list, value_list = ", ".join(keys), ", ".join(values)
    match = " AND ".join(f"s.{k} = k.{k}" for k in keys)
    sums = ", ".join(f"sum({v}) AS {v}" for v in values)
    nonzero = " OR ".join(f"sum({v}) <> 0" for v in values)
    return f"""CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    k record;
BEGIN
    FOR k IN
        WITH delta AS (
            SELECT {key_list}, {sums}
            FROM ({delta}) AS delta ({key_list}, {value_list})
            GROUP BY {key_list} HAVING {nonzero}
        ), added AS (
            INSERT INTO {table} ({key_list}, {value_list})
            SELECT {key_list}, {value_list} FROM delta RETURNING {key_list}
        )
        SELECT {key_list} FROM added
    LOOP
        IF (SELECT count(*) FROM {table} s WHERE {match}) > {FOLD_ABOVE}
           AND pg_try_advisory_xact_lock({FOLD_LOCK}, hashtext('{table}' || k::text)) THEN
            WITH gone AS (DELETE FROM {table} s WHERE {match} RETURNING {value_list})
            INSERT INTO {table} ({key_list}, {value_list})
            SELECT {", ".join(f"k.{k}" for k in keys)}, {", ".join(f"sum({v})" for v in values)}
            FROM gone HAVING {nonzero};
        END IF;
    END LOOP;
    RETURN NULL;
END
$$"""


def _pg_sums_function(name: str, delta: str) -> str:
    return pg_delta_function(name, "document_sums", _KEYS, ("n", "total_minor", "due_minor"), delta)


_PG_RECOVERIES = f"""CREATE FUNCTION charge_recoveries_track() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.status IS NOT DISTINCT FROM OLD.status THEN
        RETURN NULL;
    END IF;
    {_NOT_FAILED.format(r="NEW")}
    {_FIRST_FAILED.format(r="NEW")}
    {_RECOMPUTE.format(r="NEW")}
    RETURN NULL;
END
$$"""

_ADDED = _pg_delta("new_rows", "")
_REMOVED = _pg_delta("old_rows", "-")
PG_STATEMENTS: Final = [
    _pg_sums_function("document_sums_insert", _ADDED),
    _pg_sums_function("document_sums_delete", _REMOVED),
    _pg_sums_function("document_sums_update", f"{_ADDED} UNION ALL {_REMOVED}"),
    "CREATE TRIGGER document_sums_insert AFTER INSERT ON documents REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION document_sums_insert()",
    "CREATE TRIGGER document_sums_delete AFTER DELETE ON documents REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION document_sums_delete()",
    "CREATE TRIGGER document_sums_update AFTER UPDATE ON documents "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION document_sums_update()",
    _PG_RECOVERIES,
    "CREATE TRIGGER charge_recoveries_track AFTER INSERT OR UPDATE OF status ON payment_attempts "
    "FOR EACH ROW EXECUTE FUNCTION charge_recoveries_track()",
]

PG_DROP: Final = [
    "DROP TRIGGER document_sums_insert ON documents",
    "DROP TRIGGER document_sums_delete ON documents",
    "DROP TRIGGER document_sums_update ON documents",
    "DROP TRIGGER charge_recoveries_track ON payment_attempts",
    "DROP FUNCTION document_sums_insert()",
    "DROP FUNCTION document_sums_delete()",
    "DROP FUNCTION document_sums_update()",
    "DROP FUNCTION charge_recoveries_track()",
]
SQLITE_DROP: Final = [
    "DROP TRIGGER document_sums_insert",
    "DROP TRIGGER document_sums_delete",
    "DROP TRIGGER document_sums_update",
    "DROP TRIGGER charge_recoveries_insert",
    "DROP TRIGGER charge_recoveries_update",
]

_EXPECTED_SUMS = (
    f"SELECT {_key_values('documents')}, count(*), sum(total_minor), sum({_due('documents')}) "
    f"FROM documents GROUP BY {_key_values('documents')}"
)
_EXPECTED_RECOVERIES = f"""SELECT a.organization_id, a.currency, a.document_id, a.id, a.created_at,
    {_PAID.format(doc="a.document_id")}
FROM payment_attempts a
WHERE a.status = 'failed' AND a.provider <> 'external'
  AND NOT EXISTS (SELECT 1 FROM payment_attempts e
                  WHERE e.document_id = a.document_id AND e.provider <> 'external' AND e.id < a.id)"""

BACKFILL: Final = [
    f"INSERT INTO document_sums ({', '.join(_KEYS)}, n, total_minor, due_minor) {_EXPECTED_SUMS}",
    "INSERT INTO charge_recoveries "
    f"(organization_id, currency, document_id, attempt_id, created_at, recovered) {_EXPECTED_RECOVERIES}",
]

_ALIASED_KEYS = (
    "documents.organization_id AS organization_id, documents.currency AS currency, "
    "documents.type AS type, documents.status AS status, "
    f"COALESCE(documents.issue_date, '{NO_DATE}') AS issue_date, "
    f"COALESCE(documents.due_date, '{NO_DATE}') AS due_date"
)
_SIGNED_SUMS = (
    f"SELECT {_ALIASED_KEYS}, 1 AS n, total_minor AS t, {_due('documents')} AS d FROM documents "
    f"UNION ALL SELECT {', '.join(_KEYS)}, -n, -total_minor, -due_minor FROM document_sums"
)

CHECKS: Final = {
    "document_sums_match_documents": f"""
        SELECT {", ".join(_KEYS)}, sum(n) AS n, sum(t) AS total_minor, sum(d) AS due_minor
        FROM ({_SIGNED_SUMS}) AS x
        GROUP BY {", ".join(_KEYS)} HAVING sum(n) <> 0 OR sum(t) <> 0 OR sum(d) <> 0""",
    "charge_recoveries_match_attempts": f"""
        SELECT attempt_id, sum(s) AS rows_off, sum(r) AS recovered_off
        FROM (SELECT a.id AS attempt_id, 1 AS s, {_PAID.format(doc="a.document_id")} AS r
              FROM payment_attempts a
              WHERE a.status = 'failed' AND a.provider <> 'external'
                AND NOT EXISTS (SELECT 1 FROM payment_attempts e WHERE e.document_id = a.document_id
                                AND e.provider <> 'external' AND e.id < a.id)
              UNION ALL SELECT attempt_id, -1, -recovered FROM charge_recoveries) AS y
        GROUP BY attempt_id HAVING sum(s) <> 0 OR sum(r) <> 0""",
}
