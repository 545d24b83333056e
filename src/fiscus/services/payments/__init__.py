"""Collecting money for documents: payment methods, attempts, captures, refunds, retries, settlement.

A provider call is never made inside a database transaction. Each money move is three steps:
(1) one transaction writes the intent (an attempt, capture or refund row, `pending`, with the
idempotency key the provider will get), (2) the provider is called with that key, (3) one transaction
settles the row from the provider's answer. A crash or timeout between (1) and (3) leaves the row
`pending`/`unknown`; `janitor.settle_unknown` asks the provider by key later, so nothing is charged twice
and nothing is marked paid without a capture. At most one unsettled attempt exists per document (a
partial unique index), so two processes can never charge one document at once.

`settlement.apply_charge_snapshot` is the one rule that moves Fiscus's records to what the provider says;
the call's own answer, a lookup by key and an inbound webhook all go through it, in any order.

Each rule has its module, and callers import from it: `methods` (cards, defaults, a subscription's own
card), `charging`, `settlement`, `receipts` (what a payment pays, proforma conversion, external
payments), `captures`, `refunds`, `retries` (the schedule after a failure, the final action),
`collection` (the worker's automatic charges), `janitor`, `provider_events`, `settings`. Imports run one
way: `attempts` and `services.document_state` at the bottom, `collection` at the top.
"""
