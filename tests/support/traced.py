"""Two stages of a case in two `hub run` processes, for the trace test.

``first``: the test ledger (``<prefix>.in`` → a row and ``LedgerEntryRecorded`` on
``<prefix>.out``). ``second``: a connector-like effect that reads ``<prefix>.out`` and POSTs
each entry to the peer at ``TRACE_PEER_URL`` with httpx (as the connectors call their peers).
"""

from __future__ import annotations

import os
from typing import Any

import httpx

from hub.bootstrap import Wiring
from hub.consumers import ConsumerSpec
from hub.db import create_db_engine
from hub.settings import Settings
from schemas.envelope import Envelope
from tests.support import ledger
from tests.support.ledger import LedgerEntryRecorded


def first(settings: Settings) -> Wiring:
    return ledger.wiring(settings)


def second(settings: Settings) -> Wiring:
    engine = create_db_engine(settings.database_url.get_secret_value())
    _, t_out = ledger.topics()
    client = httpx.AsyncClient(timeout=10)

    async def notify(ctx: Any, envelope: Envelope[LedgerEntryRecorded]) -> None:
        response = await client.post(os.environ["TRACE_PEER_URL"],
                                     json={"entry_no": envelope.payload.entry_no})
        response.raise_for_status()

    spec = ConsumerSpec("notifier", (t_out,), handlers={LedgerEntryRecorded: notify},
                        description="Test: posts each recorded entry to a peer")
    return Wiring(engine=engine, consumers=[spec], closers=[client.aclose])
