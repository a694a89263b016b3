"""Library messages that read as failures but are expected are dropped or lowered (hub.logs)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from hub.logs import setup_logging


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    before = (root.handlers[:], root.level)
    setup_logging("INFO", "text")
    out = io.StringIO()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(out)
    yield out
    root.handlers[:], _ = before
    root.setLevel(before[1])


def test_faststreams_topic_creation_warning_is_dropped(captured: io.StringIO) -> None:
    logging.getLogger("hub.kafka").warning(
        "Auto create topics is disabled. Make sure the topics exist.")
    logging.getLogger("hub.kafka").warning("a consumer lost its partitions")
    assert captured.getvalue().splitlines() == [
        "WARNING hub.kafka: a consumer lost its partitions"]


def test_a_retried_coordinator_lookup_is_not_an_error(captured: io.StringIO) -> None:
    log = logging.getLogger("aiokafka.consumer.group_coordinator")
    log.error("Group Coordinator Request failed: %s",
              "[Error 15] GroupCoordinatorNotAvailableError")
    log.error("Group Coordinator Request failed: %s", "[Error 30] GroupAuthorizationFailed")
    lines = captured.getvalue().splitlines()
    assert lines == ["ERROR   aiokafka.consumer.group_coordinator: Group Coordinator Request "
                     "failed: [Error 30] GroupAuthorizationFailed"]


def test_offline_signing_notice_is_dropped(captured: io.StringIO) -> None:
    logging.getLogger("pyhanko.sign.signers.pdf_signer").warning(
        "Validation/revocation info will be embedded, but fetching is not allowed. "
        "This may give rise to unexpected results.")
    assert captured.getvalue() == ""
