"""The test gateway's own ledger: payment methods, charges, captures, refunds and idempotency records.

It lives in its own SQLite file, independent of Fiscus's database, so that reconciling Fiscus against
it is a real check between two systems. Every write runs in one `BEGIN IMMEDIATE` transaction that
also checks and stores the idempotency record: a retried call can never charge twice, even when two
retries race. Amounts are integers in minor units; the card number is never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    literal_column,
    select,
)

from fiscus.gateway import cards

BUSY_TIMEOUT_MS = 60_000

metadata = MetaData()

gateway_meta = Table(
    "gateway_meta",
    metadata,
    Column("name", String, primary_key=True),
    Column("value", String, nullable=False),
)

payment_methods = Table(
    "payment_methods",
    metadata,
    Column("token", String, primary_key=True),
    Column("brand", String, nullable=False),
    Column("last4", String(4), nullable=False),
    Column("exp_month", Integer, nullable=False),
    Column("exp_year", Integer, nullable=False),
    Column("fingerprint", String, nullable=False, index=True),
    Column("created_at", String, nullable=False),
)

charges = Table(
    "charges",
    metadata,
    Column("id", String, primary_key=True),
    Column("idempotency_key", String, nullable=False, unique=True),
    Column("token", String, ForeignKey("payment_methods.token"), nullable=False),
    Column("amount", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("capture", Boolean, nullable=False),
    Column("status", String, nullable=False),
    Column("captured_amount", Integer, nullable=False),
    Column("refunded_amount", Integer, nullable=False),
    Column("decline_code", String, nullable=True),
    Column("message", String, nullable=False),
    Column("reference", String, nullable=True),
    Column("created_at", String, nullable=False),
    Column("updated_at", String, nullable=False),
)

captures = Table(
    "captures",
    metadata,
    Column("id", String, primary_key=True),
    Column("charge_id", String, ForeignKey("charges.id"), nullable=False, index=True),
    Column("amount", Integer, nullable=False),
    Column("idempotency_key", String, nullable=False),
    Column("created_at", String, nullable=False),
)

refunds = Table(
    "refunds",
    metadata,
    Column("id", String, primary_key=True),
    Column("charge_id", String, ForeignKey("charges.id"), nullable=False, index=True),
    Column("amount", Integer, nullable=False),
    Column("idempotency_key", String, nullable=False),
    Column("created_at", String, nullable=False),
)

idempotency = Table(
    "idempotency",
    metadata,
    Column("key", String, primary_key=True),
    Column("request_hash", String, nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("response", Text, nullable=False),
    Column("created_at", String, nullable=False),
)

Json = dict[str, Any]


class GatewayError(Exception):
    """A request the gateway refuses; rendered as `{"error": {"code", "message"}}`."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message


@dataclass
class OpResult:
    """The outcome of one write: the HTTP response, events to send, and any test-card delay."""

    status_code: int
    body: Json
    events: list[tuple[str, Json]] = field(default_factory=list)
    delay: cards.Delay = "none"


def make_gateway_engine(db_path: Path) -> Engine:
    """SQLite with WAL and `BEGIN IMMEDIATE` writes, as Fiscus's own engine does (see adapters/db)."""
    engine = create_engine(
        f"sqlite:///{db_path}",
        connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


class Ledger:
    """All reads and writes of the gateway's database."""

    def __init__(self, db_path: Path, clock: Callable[[], datetime] | None = None) -> None:
        self.engine = make_gateway_engine(db_path)
        self._clock = clock or (lambda: datetime.now(UTC))
        metadata.create_all(self.engine)
        self._secret = self._load_secret()

    # -- plumbing -----------------------------------------------------------------------------------

    def now(self) -> datetime:
        moment = self._clock()
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

    def _now_iso(self) -> str:
        return self.now().isoformat().replace("+00:00", "Z")

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn, conn.begin():
            yield conn

    def _load_secret(self) -> bytes:
        """A per-database secret, so fingerprints stay stable across restarts but mean nothing elsewhere."""
        with self._write() as conn:
            value = conn.execute(
                select(gateway_meta.c.value).where(gateway_meta.c.name == "secret")
            ).scalar_one_or_none()
            if value is None:
                value = secrets.token_hex(32)
                conn.execute(gateway_meta.insert().values(name="secret", value=value))
        return bytes.fromhex(value)

    def fingerprint(self, number: str) -> str:
        """HMAC-SHA256 of the number: the same card gives the same fingerprint, yet is not reversible."""
        return hmac.new(self._secret, number.encode(), hashlib.sha256).hexdigest()

    def request_hash(self, method: str, path: str, body: Json) -> str:
        """Keyed hash of a request (keyed, because a tokenisation body holds a card number)."""
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hmac.new(self._secret, f"{method} {path}\n{canonical}".encode(), hashlib.sha256).hexdigest()

    def dispose(self) -> None:
        self.engine.dispose()

    # -- idempotency --------------------------------------------------------------------------------

    def execute(
        self, key: str, request_hash: str, op: Callable[[Connection], OpResult]
    ) -> tuple[OpResult, bool]:
        """Run `op` once per idempotency key; a retry gets the stored response (second value True).

        The check, the write and the stored response share one IMMEDIATE transaction, so racing
        retries serialise and the loser replays the winner's answer. Errors are not stored: a
        refused request changed nothing, so retrying it is harmless.
        """
        with self._write() as conn:
            row = conn.execute(select(idempotency).where(idempotency.c.key == key)).first()
            if row is not None:
                if not hmac.compare_digest(row.request_hash, request_hash):
                    raise GatewayError(
                        422,
                        "idempotency_key_reused",
                        "This Idempotency-Key was used with a different request; use a new key.",
                    )
                return OpResult(row.status_code, json.loads(row.response)), True
            result = op(conn)
            if 200 <= result.status_code < 300:
                conn.execute(
                    idempotency.insert().values(
                        key=key,
                        request_hash=request_hash,
                        status_code=result.status_code,
                        response=json.dumps(result.body),
                        created_at=self._now_iso(),
                    )
                )
            return result, False

    # -- operations (each runs inside `execute`) -----------------------------------------------------

    def tokenise(self, conn: Connection, number: str, exp_month: int, exp_year: int) -> OpResult:
        """Store brand, last4, expiry and fingerprint; the number itself goes no further than here."""
        row = {
            "token": _new_id("pm"),
            "brand": cards.brand_of(number),
            "last4": number[-4:],
            "exp_month": exp_month,
            "exp_year": exp_year,
            "fingerprint": self.fingerprint(number),
            "created_at": self._now_iso(),
        }
        conn.execute(payment_methods.insert().values(**row))
        return OpResult(201, _payment_method_json(row))

    def tokenise_now(self, number: str, exp_month: int, exp_year: int) -> Json:
        """Tokenise in a transaction of its own: the hosted form has no Idempotency-Key, and needs none,
        since a second token for the same card moves no money."""
        with self._write() as conn:
            return self.tokenise(conn, number, exp_month, exp_year).body

    def _scenario(self, method: Any) -> cards.Scenario:
        """Recognise test cards by fingerprint, since the number is not kept; then check expiry."""
        by_fingerprint = {self.fingerprint(n): s for n, s in cards.SCENARIOS.items()}
        scenario = by_fingerprint.get(method.fingerprint, cards.APPROVED)
        now = self.now()
        if scenario.result == "approved" and (method.exp_year, method.exp_month) < (now.year, now.month):
            return cards.EXPIRED
        return scenario

    def create_charge(
        self,
        conn: Connection,
        *,
        key: str,
        token: str,
        amount: int,
        currency: str,
        capture: bool,
        reference: str | None,
    ) -> OpResult:
        """Decide the outcome from the test card and record the charge, whatever the outcome."""
        method = conn.execute(select(payment_methods).where(payment_methods.c.token == token)).first()
        if method is None:
            raise GatewayError(404, "no_such_payment_method", f"No payment method {token!r}.")
        scenario = self._scenario(method)
        if scenario.result == "approved":
            status = "succeeded" if capture else "authorized"
        else:
            status = scenario.result
        now = self._now_iso()
        charge_id = _new_id("ch")
        conn.execute(
            charges.insert().values(
                id=charge_id,
                idempotency_key=key,
                token=token,
                amount=amount,
                currency=currency,
                capture=capture,
                status=status,
                captured_amount=amount if status == "succeeded" else 0,
                refunded_amount=0,
                decline_code=scenario.decline_code,
                message=scenario.message,
                reference=reference,
                created_at=now,
                updated_at=now,
            )
        )
        if status == "succeeded":
            conn.execute(
                captures.insert().values(
                    id=_new_id("cp"), charge_id=charge_id, amount=amount, idempotency_key=key, created_at=now
                )
            )
        body = self._charge_json(conn, charge_id)
        kind = "charge.succeeded" if scenario.result == "approved" else "charge.failed"
        return OpResult(201, body, [(kind, body)], scenario.delay)

    def _locked_charge(self, conn: Connection, charge_id: str) -> Any:
        row = conn.execute(select(charges).where(charges.c.id == charge_id)).first()
        if row is None:
            raise GatewayError(404, "no_such_charge", f"No charge {charge_id!r}.")
        return row

    def capture(self, conn: Connection, *, key: str, charge_id: str, amount: int | None) -> OpResult:
        """Capture an authorisation once, fully or partly; the rest of the hold is released."""
        charge = self._locked_charge(conn, charge_id)
        if charge.status != "authorized":
            raise GatewayError(
                409, "charge_not_capturable", f"Charge {charge_id} is {charge.status}, not authorized."
            )
        amount = charge.amount if amount is None else amount
        if amount > charge.amount:
            raise GatewayError(
                422,
                "amount_exceeds_authorized",
                f"Cannot capture {amount}: only {charge.amount} {charge.currency} was authorised.",
            )
        now = self._now_iso()
        conn.execute(
            captures.insert().values(
                id=_new_id("cp"), charge_id=charge_id, amount=amount, idempotency_key=key, created_at=now
            )
        )
        conn.execute(
            charges.update()
            .where(charges.c.id == charge_id)
            .values(status="succeeded", captured_amount=amount, updated_at=now)
        )
        body = self._charge_json(conn, charge_id)
        return OpResult(200, body, [("charge.captured", body)])

    def void(self, conn: Connection, *, charge_id: str) -> OpResult:
        """Release an authorisation that will never be captured."""
        charge = self._locked_charge(conn, charge_id)
        if charge.status != "authorized":
            raise GatewayError(
                409, "charge_not_voidable", f"Charge {charge_id} is {charge.status}, not authorized."
            )
        conn.execute(
            charges.update()
            .where(charges.c.id == charge_id)
            .values(status="voided", updated_at=self._now_iso())
        )
        body = self._charge_json(conn, charge_id)
        return OpResult(200, body, [("charge.voided", body)])

    def refund(self, conn: Connection, *, key: str, charge_id: str, amount: int) -> OpResult:
        """Refund part or all of what is captured and not yet refunded; never more."""
        charge = self._locked_charge(conn, charge_id)
        if charge.status != "succeeded":
            raise GatewayError(
                409, "charge_not_refundable", f"Charge {charge_id} is {charge.status}; nothing is captured."
            )
        refundable = charge.captured_amount - charge.refunded_amount
        if amount > refundable:
            raise GatewayError(
                422,
                "amount_exceeds_refundable",
                f"Cannot refund {amount}: only {refundable} {charge.currency} of charge {charge_id} "
                f"is still refundable (captured {charge.captured_amount}, "
                f"refunded {charge.refunded_amount}).",
            )
        now = self._now_iso()
        refund_id = _new_id("re")
        conn.execute(
            refunds.insert().values(
                id=refund_id, charge_id=charge_id, amount=amount, idempotency_key=key, created_at=now
            )
        )
        conn.execute(
            charges.update()
            .where(charges.c.id == charge_id)
            .values(refunded_amount=charges.c.refunded_amount + amount, updated_at=now)
        )
        charge_body = self._charge_json(conn, charge_id)
        body = {
            "id": refund_id,
            "charge_id": charge_id,
            "amount": amount,
            "currency": charge.currency,
            "created_at": now,
            "charge": charge_body,
        }
        return OpResult(201, body, [("charge.refunded", charge_body)])

    # -- reads ----------------------------------------------------------------------------------------

    @staticmethod
    def _charge_json(conn: Connection, charge_id: str) -> Json:
        [body] = _charges_json(conn, [conn.execute(select(charges).where(charges.c.id == charge_id)).one()])
        return body

    def get_payment_method(self, token: str) -> Json:
        """The card facts behind a token (what a shop shows as "Visa •••• 4242")."""
        with self._read() as conn:
            row = conn.execute(select(payment_methods).where(payment_methods.c.token == token)).first()
        if row is None:
            raise GatewayError(404, "no_such_payment_method", f"No payment method {token!r}.")
        return _payment_method_json(row)

    def get_charge(self, charge_id: str) -> Json:
        with self._read() as conn:
            row = conn.execute(select(charges).where(charges.c.id == charge_id)).first()
            if row is None:
                raise GatewayError(404, "no_such_charge", f"No charge {charge_id!r}.")
            [body] = _charges_json(conn, [row])
        return body

    def list_charges(self, idempotency_key: str | None) -> list[Json]:
        """All charges, or the one created by a given Idempotency-Key (settling an unknown outcome)."""
        query = select(charges).order_by(charges.c.created_at, literal_column("charges.rowid"))
        if idempotency_key is not None:
            query = query.where(charges.c.idempotency_key == idempotency_key)
        with self._read() as conn:
            return _charges_json(conn, list(conn.execute(query)))

    def ledger(self) -> Json:
        """Every charge, capture and refund, in insertion order, for reconciliation."""
        with self._read() as conn:
            all_charges = _charges_json(
                conn, list(conn.execute(select(charges).order_by(literal_column("charges.rowid"))))
            )
            all_captures = [
                _movement_json(row)
                for row in conn.execute(
                    select(captures, charges.c.currency)
                    .join(charges, charges.c.id == captures.c.charge_id)
                    .order_by(literal_column("captures.rowid"))
                )
            ]
            all_refunds = [
                _movement_json(row)
                for row in conn.execute(
                    select(refunds, charges.c.currency)
                    .join(charges, charges.c.id == refunds.c.charge_id)
                    .order_by(literal_column("refunds.rowid"))
                )
            ]
        return {"charges": all_charges, "captures": all_captures, "refunds": all_refunds}


def _payment_method_json(row: Any) -> Json:
    fields = ("token", "brand", "last4", "exp_month", "exp_year", "fingerprint")
    mapping = row if isinstance(row, dict) else row._mapping
    return {name: mapping[name] for name in fields}


def _charges_json(conn: Connection, rows: list[Any]) -> list[Json]:
    """Charges with their refunds, oldest first: each refund named by its id and the idempotency key it
    was made with (`reference`), so a merchant can tell its own refunds from ones made elsewhere."""
    lines: dict[str, list[Json]] = {row.id: [] for row in rows}
    if lines:
        query = (
            select(refunds)
            .where(refunds.c.charge_id.in_(list(lines)))
            .order_by(literal_column("refunds.rowid"))
        )
        for refund in conn.execute(query):
            lines[refund.charge_id].append(
                {
                    "id": refund.id,
                    "amount": refund.amount,
                    "reference": refund.idempotency_key,
                    "created_at": refund.created_at,
                }
            )
    return [{**_charge_row_json(row), "refunds": lines[row.id]} for row in rows]


def _charge_row_json(row: Any) -> Json:
    return {
        "id": row.id,
        "status": row.status,
        "amount": row.amount,
        "currency": row.currency,
        "captured_amount": row.captured_amount,
        "refunded_amount": row.refunded_amount,
        "decline_code": row.decline_code,
        "message": row.message,
        "reference": row.reference,
        "payment_method": row.token,
        "created_at": row.created_at,
    }


def _movement_json(row: Any) -> Json:
    return {
        "id": row.id,
        "charge_id": row.charge_id,
        "amount": row.amount,
        "currency": row.currency,
        "created_at": row.created_at,
    }
