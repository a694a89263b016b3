"""利用者登録・変更・ICカード更新: the hub's central registration pipeline.

Pure rules (:mod:`.rules`: REG-1 … REG-11, CHG-1 … CHG-4, RNW-1 … RNW-9, with PIN-2,
WIN-1, NTF-1/2) over a :class:`~.world.World` of state; per-entity policy from TOML
(:mod:`.policy`); the database store (:mod:`.models`, :mod:`.store`, and :mod:`.batch`
for a whole batch of commands at once), the Kafka handlers (:mod:`.handlers`), the card
gateway's query (:mod:`.queries`), the nightly propagation (:mod:`.propagation`) and the
scenario runner (:mod:`.scenario`).
"""

from pipelines.registration.common import Decision, Outcome
from pipelines.registration.policy import PolicyBook, default_policy_book, load_policy_book
from pipelines.registration.rules import decide, decide_propagation
from pipelines.registration.world import World, apply

__all__ = [
    "Decision",
    "Outcome",
    "PolicyBook",
    "World",
    "apply",
    "decide",
    "decide_propagation",
    "default_policy_book",
    "load_policy_book",
]
