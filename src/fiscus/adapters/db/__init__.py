from fiscus.adapters.db import tables_discounts as tables_discounts  # noqa: E402  registers its tables on `metadata`
