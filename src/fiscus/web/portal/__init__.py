"""The customer portal (`/portal/{org slug}/…`): a signed-in customer's documents, payments, cards,
billing details and subscriptions. `access` signs in and out (session links, magic links), `documents`
and `account` and `subscriptions` hold the pages, `common` what they share (session cookie, CSRF,
branding, rendering), `labels` the texts in en, bg, ru and kk. Every action calls a use case in
`fiscus.services` (through `services/portal_actions.py` where the portal adds its own rule)."""
