"""The web surfaces, pages for people rather than programs, in one home:

- `pay/`: the hosted payment page (`transaction_url`), where a customer pays one document with a card
  posted to the payment gateway, never to Fiscus;
- the organisation's console and the customer portal come next, as `console/` and `portal/` beside it.

What they share lives here: `templates/` (`base.html`: the layout, head and a11y skeleton every page
extends; `message.html`), `static/` (assets served at `/static` from the package, never a CDN),
`rendering` (one Jinja environment per surface, strict security headers, the static mount), `i18n`
(labels in en, bg, ru, kk over the document's own), `signing` (signed, subject-bound, expiring values)
and `csrf` (signed double-submit tokens for forms). A surface parses, calls a service or a query, and
presents; it holds no business rule.
"""
