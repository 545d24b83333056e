"""The hosted payment page (`transaction_url`): one document and a card form that posts straight to
the payment gateway, so the card number never reaches Fiscus. `page` holds the routes, `labels` its
texts, `signing` its document-bound form state and result; the rest is shared from `fiscus.web`."""
