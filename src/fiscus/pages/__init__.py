"""Pages for people rather than programs: the hosted payment page (`transaction_url`) where a customer
pays one document with a card that is posted to the payment gateway, never to Fiscus."""
