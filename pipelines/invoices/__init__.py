"""請求書: the hub's invoice pipeline (INV-1 … INV-3).

Pure rules (:mod:`.rules`), the hardened JP PINT UBL reader (:mod:`.ubl`), the table
of accepted invoices (:mod:`.models`), the Kafka handler (:mod:`.handlers`) with
the topics it reads and publishes, for the hub's wiring.
"""

from pipelines.invoices.handlers import EMITS, HANDLERS, TOPICS
from pipelines.invoices.rules import InvoiceDecision, decide_invoice, issuer_violation
from pipelines.invoices.ubl import read_jp_pint

__all__ = ["EMITS", "HANDLERS", "TOPICS", "InvoiceDecision", "decide_invoice",
           "issuer_violation", "read_jp_pint"]
