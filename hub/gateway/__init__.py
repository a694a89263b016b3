"""HTTP gateway of the hub for card agents.

Challenge/response login with the IC card (:mod:`.cardauth`, :mod:`.sessions`),
registration/change/renewal submission (:mod:`.submit`) and their outcomes
(:mod:`.outcomes`), signing jobs (:mod:`.jobs`) and validation of the PDFs signed at the
edge (:mod:`.validation`). The hub mounts :func:`build_router` and runs
:data:`OUTCOME_CONSUMER` (:mod:`.wiring`).
"""

from hub.gateway.config import GatewayConfig
from hub.gateway.routes import build_router
from hub.gateway.wiring import OUTCOME_CONSUMER, GatewaySettings, gateway_config

__all__ = ["OUTCOME_CONSUMER", "GatewayConfig", "GatewaySettings", "build_router",
           "gateway_config"]
