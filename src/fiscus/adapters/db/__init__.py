from fiscus.adapters.db import tables_discounts as tables_discounts
