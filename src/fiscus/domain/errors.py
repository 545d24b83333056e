"""The engine's error vocabulary: each error has a stable `code`; adapters map them to their shapes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar


class DomainError(Exception):
    """Base of every rule violation. `code` is stable and documented; `data` carries structured detail."""

    code: ClassVar[str] = "domain_error"
    title: ClassVar[str] = "The request breaks a billing rule"

    def __init__(self, message: str, **data: object) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One field at fault: a dotted path (`items.0.quantity`) and what is wrong with it."""

    field: str
    message: str


class ValidationError(DomainError):
    code = "validation_error"
    title = "The input is not valid"

    def __init__(self, problems: Sequence[FieldProblem]) -> None:
        self.problems = list(problems)
        summary = "; ".join(f"{p.field}: {p.message}" for p in self.problems)
        super().__init__(summary)


class InvalidFieldError(ValidationError):
    """A single field at fault; the common case."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__([FieldProblem(field, message)])
        self.field = field


class NotFoundError(DomainError):
    code = "not_found"
    title = "No such object"

    def __init__(self, entity: str, ident: object, field: str | None = None) -> None:
        """`field`: the request field that named the missing object (answered with its pointer)."""
        super().__init__(f"{entity} {ident} does not exist", entity=entity, id=str(ident))
        self.entity = entity
        self.field = field


class InvalidStateError(DomainError):
    code = "invalid_state"
    title = "The object is not in a state that allows this"


class ConflictError(DomainError):
    code = "conflict"
    title = "The request conflicts with the current state"


class FieldConflictError(InvalidFieldError, InvalidStateError):
    """A well-formed field that the current data does not allow: it names an object that does not fit
    (a recurring price on an order, another currency) or asks for more than there is (a refund above
    what was paid, a line already credited). A field error (it names the field) answered 409, not 422:
    the same request would succeed against other data; 422 is kept for what the request alone gets
    wrong, which the OpenAPI document states."""

    code = "field_conflict"
    title = "The field conflicts with the current state"


class FieldConflictsError(FieldConflictError):
    """Several well-formed fields the current data does not allow at once (the events of a batch that
    name no metric or customer, or fall outside the late window): one 409 naming each."""

    def __init__(self, problems: Sequence[FieldProblem]) -> None:
        ValidationError.__init__(self, problems)
        self.field = self.problems[0].field
