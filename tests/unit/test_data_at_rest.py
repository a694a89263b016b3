"""Data at rest and in transit (DAT-1, DAT-2, DAT-3): safe case ids, paths that stay in
their directory, private file modes, the 認証キー sealed in every JSON form and redacted
wherever a dead letter is shown."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from connectors._shared.files import (
    PathEscapeError,
    contained,
    ensure_run_dir,
    private_dir,
    write_private,
)
from connectors.cloudsign.documents import FileDocumentStore
from hub.db import create_db_engine
from hub.dlq import DeadLetter, redact_value
from pipelines.contract.mails import mail_document_ref
from schemas.cloudsign import DocumentRef
from schemas.contract import ContractCaseOpened, ContractParty
from schemas.envelope import new_envelope
from schemas.sealed import DEMO_FIELD_KEYS, use_field_keys
from schemas.surety import SuretyCheckRequested, SuretyKeySource
from schemas.wire import WireError, decode, encode

ROOT = Path(__file__).resolve().parents[2]
KEY = "Z28YUE4J3Bux"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _opened(case_id: str) -> dict[str, object]:
    return {"case_id": case_id, "subject": "市道改良工事", "amount_yen": 1_000_000,
            "contractor_network": "tokyo", "contractor_user_id": "U1",
            "contractor_name": "〇〇建設", "city_name": "例市",
            "city_officer": ContractParty(name="契約 太郎", email="keiyaku@city.example.jp"),
            "opened_at": datetime.now(UTC)}


@pytest.mark.parametrize("case_id", ["R8-001", "B-1", "令和8年度第12号", "R8.001.a", "工事_々1"])
def test_case_ids_of_the_safe_alphabet_are_accepted(case_id: str) -> None:
    assert ContractCaseOpened(**_opened(case_id)).case_id == case_id  # type: ignore[arg-type]


@pytest.mark.parametrize("case_id", ["../x", "..", "a/b", "a\\b", "a\x00b", "a\nb", "a b",
                                     ".hidden", "trailing.", "a..b", "/etc/passwd", "ｘ／ｙ",
                                     "R8-001\u202e"])
def test_case_ids_outside_it_are_refused(case_id: str) -> None:
    with pytest.raises(ValidationError, match="case_id"):
        ContractCaseOpened(**_opened(case_id))  # type: ignore[arg-type]


def test_a_crafted_case_id_on_the_wire_is_refused_by_name() -> None:
    env = new_envelope(ContractCaseOpened(**_opened("R8-001")),  # type: ignore[arg-type]
                       correlation_id="R8-001", procuring_entity="city", producer="test")
    _key, value, headers = encode(env)
    crafted = value.replace(b'"case_id":"R8-001"', b'"case_id":"../../../../tmp/evil"')
    with pytest.raises(WireError) as refused:
        decode(crafted, headers)
    assert refused.value.reason == "invalid"
    assert "payload.case_id" in refused.value.detail


def test_contained_keeps_names_inside_their_directory(tmp_path: Path) -> None:
    assert contained(tmp_path, "contracts/ab/R8-001.pdf") == (
        tmp_path.resolve() / "contracts/ab/R8-001.pdf")
    for escape in ("../evil.pdf", "contracts/../../evil.pdf", "/etc/passwd", ".", ""):
        with pytest.raises(PathEscapeError):
            contained(tmp_path, escape)
    (tmp_path / "link").symlink_to("/tmp")
    with pytest.raises(PathEscapeError):
        contained(tmp_path, "link/evil.pdf")


def test_the_signed_pdfs_mail_path_cannot_leave_the_mail_directory(tmp_path: Path) -> None:
    # A reference that got past the schemas (model_construct skips them): the second line.
    ref = DocumentRef.model_construct(uri="doc:x", filename="../../../evil.pdf", size_bytes=1,
                                      sha256="ab" * 32)
    with pytest.raises(PathEscapeError):
        contained(tmp_path / "mail", mail_document_ref(ref))


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_private_files_are_0600_in_0700_directories(tmp_path: Path, loose_umask: None) -> None:
    target = tmp_path / "a" / "b" / "signed.pdf"
    write_private(target, b"%PDF-1.7")
    assert target.read_bytes() == b"%PDF-1.7"
    assert _mode(target) == 0o600
    assert _mode(tmp_path / "a") == 0o700
    assert _mode(tmp_path / "a" / "b") == 0o700
    target.chmod(0o644)
    write_private(target, b"again")  # an existing file is made private too
    assert _mode(target) == 0o600
    assert not list(target.parent.glob("*.part"))
    existing = tmp_path / "run"
    existing.mkdir(mode=0o755)
    assert _mode(private_dir(existing)) == 0o700


def test_a_run_directory_is_made_private_but_an_existing_one_is_left_alone(
        tmp_path: Path, loose_umask: None) -> None:
    assert _mode(ensure_run_dir(tmp_path / "new" / "run")) == 0o700
    shared = tmp_path / "shared"  # the deploy scripts keep PostgreSQL's data below it
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    assert _mode(ensure_run_dir(shared)) == 0o755


def test_document_store_and_sqlite_files_are_private(tmp_path: Path, loose_umask: None) -> None:
    store = FileDocumentStore(tmp_path / "documents" / "cloudsign")
    ref = store.put("R8-001.pdf", b"%PDF-1.7 signed")
    stored = Path(ref.uri.removeprefix("file://"))
    assert _mode(stored) == 0o600
    assert _mode(stored.parent) == 0o700
    assert _mode(tmp_path / "documents") == 0o700
    engine = create_db_engine(f"sqlite:///{tmp_path / 'db' / 'hub.db'}")
    with engine.connect() as conn:
        conn.exec_driver_sql("create table t (x integer)")
        conn.commit()
    engine.dispose()
    assert _mode(tmp_path / "db") == 0o700
    for name in ("hub.db", "hub.db-wal", "hub.db-shm"):
        if (tmp_path / "db" / name).exists():
            assert _mode(tmp_path / "db" / name) == 0o600, name


def test_hub_commands_make_private_files(tmp_path: Path) -> None:
    env = {**os.environ, "HUB_RUN_DIR": str(tmp_path / "run"), "PYTHONPATH": str(ROOT),
           "HUB_DATABASE_URL": f"sqlite:///{tmp_path / 'run' / 'hub.db'}"}
    subprocess.run([sys.executable, "-m", "hub.cli", "db", "upgrade"], env=env, check=True,
                   capture_output=True, timeout=120)
    assert _mode(tmp_path / "run") == 0o700
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert files
    assert {p.name: _mode(p) for p in files} == {p.name: 0o600 for p in files}


def _check() -> SuretyCheckRequested:
    return SuretyCheckRequested(contract_number="31072-0001M", auth_key=KEY,
                                source=SuretyKeySource.APPLICATION)


@pytest.fixture
def field_keys() -> Iterator[None]:
    yield
    use_field_keys(None)


def test_the_auth_key_is_sealed_in_json_and_opened_on_input(field_keys: None) -> None:
    env = new_envelope(_check(), correlation_id="R8-001", procuring_entity="city",
                       producer="test")
    _key, value, headers = encode(env)
    assert KEY.encode() not in value
    assert KEY not in json.dumps(_check().model_dump(mode="json"))
    assert b'"auth_key":"sealed:v1:demo:' in value
    assert decode(value, headers).payload.auth_key == KEY
    assert KEY not in repr(env)
    # Two seals of one key differ (a fresh nonce): equal keys are not visible as equal.
    assert _check().model_dump_json() != _check().model_dump_json()
    # A clear key is still accepted on input (then sealed on its way out).
    clear = value.replace(json.loads(value)["payload"]["auth_key"].encode(), KEY.encode())
    assert decode(clear, headers).payload.auth_key == KEY


def test_rotation_unknown_keys_and_tampering(field_keys: None) -> None:
    old = "k1=" + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    new = "k2=" + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    use_field_keys(old)
    sealed_old = _check().model_dump_json()
    use_field_keys(f"{new} {old}")
    sealed_new = _check().model_dump_json()
    assert '"sealed:v1:k2:' in sealed_new
    assert SuretyCheckRequested.model_validate_json(sealed_old).auth_key == KEY
    use_field_keys(new)
    with pytest.raises(ValidationError, match="not in HUB_FIELD_KEYS") as unknown:
        SuretyCheckRequested.model_validate_json(sealed_old)
    assert KEY not in str(unknown.value)
    body = json.loads(sealed_new)
    token = body["auth_key"]
    body["auth_key"] = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    with pytest.raises(ValidationError, match="cannot be opened"):
        SuretyCheckRequested.model_validate_json(json.dumps(body))
    relabelled = token.replace("sealed:v1:k2:", "sealed:v1:k1:")
    use_field_keys(f"{new} {old}")
    with pytest.raises(ValidationError, match="cannot be opened"):  # the key id is bound
        SuretyCheckRequested.model_validate_json(json.dumps({**body, "auth_key": relabelled}))
    for bad in ("k1=short", "no-equals", "k1=" + "A" * 43 + " k1=" + "A" * 43):
        with pytest.raises(ValueError, match="entry") as malformed:
            use_field_keys(bad)
        assert "A" * 10 not in str(malformed.value)
    assert use_field_keys(DEMO_FIELD_KEYS).current == "demo"


def test_dlq_show_redacts_credentials_sealed_or_in_clear() -> None:
    clear = json.dumps({"type": "surety.check-requested", "payload": {
        "auth_key": KEY, "contract_number": "31072-0001M",
        "nested": [{"password": "hunter2hunter2", "note": "ok"}]}})
    shown = redact_value(clear)
    assert KEY not in shown
    assert "hunter2hunter2" not in shown
    assert '"note": "ok"' in shown
    assert "31072-0001M" in shown
    broken = '{"payload": {"auth_key": "' + KEY + '", "api_token": "t\\"x"'  # not JSON
    assert KEY not in redact_value(broken)
    letter = DeadLetter(dlq_topic="proc.surety.commands.dlq", partition=0, offset=3,
                        key=b"R8-001", value=_check().model_dump_json().encode(), headers=[])
    details = json.dumps(letter.details(), ensure_ascii=False)
    assert KEY not in details
    assert "sealed:v1" not in details
    assert "[redacted]" in details
