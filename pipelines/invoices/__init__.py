"""請求書: the hub's invoice pipeline (INV-1 … INV-3).

Pure rules (:mod:`.rules`), the hardened JP PINT UBL reader (:mod:`.ubl`), the table
of accepted invoices (:mod:`.models`), the Kafka handler (:mod:`.handlers`) and
:func:`consumers` for the hub's wiring.
"""

from pipelines.invoices.handlers import HANDLERS, consumers
from pipelines.invoices.rules import InvoiceDecision, decide_invoice, issuer_violation
from pipelines.invoices.ubl import read_jp_pint

__all__ = ["HANDLERS", "InvoiceDecision", "consumers", "decide_invoice", "issuer_violation",
           "read_jp_pint"]
