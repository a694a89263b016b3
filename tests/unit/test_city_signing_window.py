"""WIN-2 for the city's signature: inside an entity's announced e-contract window that
stops signing, the city signer's consumer holds the case until the window ends (the
work waits, as for the TSA's own windows, WIN-3); outside it, it signs."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa

from connectors._shared.errors import PeerInMaintenance
from hub.contract import jobs
from hub.contract.jobs import city_signer_consumer, signing_window
from schemas.contract import ContractStatus, ContractStepRecorded
from schemas.envelope import JST, new_envelope

# Seed 000 announces 「2024年 11月17日(日) 23:00 ~ 2024年 11月18日(月) 6:00」 for the
# timestamp service: no 電子署名付与 then (pipelines/registration/default_policy.toml).
IN_WINDOW = datetime(2024, 11, 18, 1, 0, tzinfo=JST)
OUTSIDE = datetime(2024, 11, 18, 7, 0, tzinfo=JST)


class Signed(Exception):
    """The signer was reached."""


class Signer:
    def __init__(self) -> None:
        self.calls = 0

    async def sign(self, pdf: bytes, *, field_name: str = "CitySignature") -> Any:
        self.calls += 1
        raise Signed


def test_the_announced_signing_window_of_the_entity_is_found() -> None:
    window = signing_window("mlit", IN_WINDOW)
    assert window is not None
    assert window.end == datetime(2024, 11, 18, 6, 0, tzinfo=JST)
    assert signing_window("mlit", OUTSIDE) is None
    assert signing_window("no-such-entity", IN_WINDOW) is None


@pytest.mark.parametrize(("at", "held"), [(IN_WINDOW, True), (OUTSIDE, False)])
async def test_the_city_signer_holds_a_case_inside_the_window(
        monkeypatch: pytest.MonkeyPatch, at: datetime, held: bool) -> None:
    found = SimpleNamespace(state=SimpleNamespace(procuring_entity="mlit", case_id="R6-0001"),
                            contractor=None, pdf=b"%PDF-1.7", done=None)
    monkeypatch.setattr(jobs, "_to_sign", lambda engine, case_id: found)
    signer = Signer()
    spec = city_signer_consumer(sa.create_engine("sqlite://"), signer, clock=lambda: at)
    step = new_envelope(ContractStepRecorded(case_id="R6-0001",
                                             status=ContractStatus.CITY_AGREED,
                                             step="econtract.city-agreed", agreed=2, parties=2,
                                             at=at), correlation_id="R6-0001",
                        procuring_entity="mlit", producer="test")
    handler = spec.handlers[ContractStepRecorded]
    if held:
        with pytest.raises(PeerInMaintenance) as exc:
            await handler(SimpleNamespace(), step)  # type: ignore[arg-type]
        assert exc.value.until == datetime(2024, 11, 18, 6, 0, tzinfo=JST)
        assert signer.calls == 0
    else:
        with pytest.raises(Signed):
            await handler(SimpleNamespace(), step)  # type: ignore[arg-type]
        assert signer.calls == 1
