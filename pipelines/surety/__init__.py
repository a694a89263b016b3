"""電子保証: the hub's surety pipeline (SUR-1 … SUR-6).

Pure rules (:mod:`.rules`) over the case facts (schemas/case.py), the guarantee
contracts seen so far and the paper tasks; the tables (:mod:`.models`), the Kafka
handlers (:mod:`.handlers`) with the topics they read and publish, for the hub's wiring.
"""

from pipelines.surety.handlers import EMITS, HANDLERS, TOPICS
from pipelines.surety.rules import CaseState, Decision, Guarantee, PaperTask

__all__ = ["EMITS", "HANDLERS", "TOPICS", "CaseState", "Decision", "Guarantee", "PaperTask"]
