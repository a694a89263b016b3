"""The agent's own wire constants agree with the hub's models (card_agent owns them so
its distribution needs neither pydantic nor the hub)."""

from __future__ import annotations

import dataclasses

from card_agent.wire import CARD_PROOF_CONTEXT, RuleViolation
from hub.gateway.cardauth import CARD_PROOF_CONTEXT as HUB_CONTEXT
from schemas.rejection import RuleViolation as HubRuleViolation


def test_rule_violation_has_the_hubs_fields() -> None:
    assert [f.name for f in dataclasses.fields(RuleViolation)] == list(
        HubRuleViolation.model_fields)


def test_a_hub_violation_round_trips_through_the_agent() -> None:
    hub = HubRuleViolation(rule_id="PIN-2", message_ja="拒否", message_en="refused",
                           next_step_ja="やり直す", next_step_en="retry", field="proof")
    agent = RuleViolation.from_dict({**hub.model_dump(mode="json"), "added_later": 1})
    assert HubRuleViolation.model_validate(agent.model_dump()) == hub


def test_the_card_proof_context_is_the_hubs() -> None:
    assert CARD_PROOF_CONTEXT == HUB_CONTEXT
