"""請求書: the hub's invoice pipeline (INV-1 … INV-6).

Pure rules (:mod:`.rules`), the official JP PINT rules run as a gate (:mod:`.gate`, the
vendored stylesheets in ``jp_pint/``), the hardened and strict JP PINT UBL reader
(:mod:`.ubl`), the table of accepted invoices (:mod:`.models`), the Kafka handlers
(:mod:`.handlers`) with the topics they read and publish, for the hub's wiring.
See docs/invoices.md.
"""

from pipelines.invoices.gate import jp_pint_version, run_gate
from pipelines.invoices.handlers import EMITS, HANDLERS, TOPICS
from pipelines.invoices.rules import InvoiceDecision, decide_invoice, issuer_violation
from pipelines.invoices.ubl import read_jp_pint

__all__ = ["EMITS", "HANDLERS", "TOPICS", "InvoiceDecision", "decide_invoice",
           "issuer_violation", "jp_pint_version", "read_jp_pint", "run_gate"]
