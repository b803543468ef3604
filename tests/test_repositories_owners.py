"""The owners of ``idempotency_records``, ``principals``/``api_keys`` and ``account_owners``
at their repositories' level, on SQLite and PostgreSQL; the access rule's reads
(:mod:`ledger.flows.ownership.holders`), each check one transaction opened by the flow and
none by ``api.access``; and the one logger name that ``api`` and ``webhooks`` share."""

from __future__ import annotations

import ast
import logging
import pathlib
import secrets
import subprocess
import sys
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from api import access
from api import observability as api_observability
from api.access import Owners
from api.principals import ApiKey
from ledger import Account, AccountFlags, Ledger, Transfer, limits
from ledger import observability as ledger_observability
from ledger.core.errors import LedgerError
from ledger.core.tx import Tx
from ledger.flows import idempotency, ownership, parties, principals
from ledger.flows.errors import Refused
from ledger.flows.idempotency import repository as idem_repo
from ledger.flows.idempotency import service as idem_service
from ledger.flows.idempotency.repository import Lease, RecordState, Scope, StoredAnswer
from ledger.flows.ownership import holders
from ledger.flows.ownership import repository as owners_repo
from ledger.flows.principals import Alg, KeyRefused, KeyState, Role
from ledger.flows.principals import repository as keys_repo
from tools import shape
from webhooks import delivery, worker

ROOT = pathlib.Path(__file__).resolve().parents[1]
KES = "KES"
T = TypeVar("T")


def in_tx(led: Ledger, work: Callable[[Tx], T]) -> T:
    return led.transact(work)


def principal(led: Ledger, role: Role = Role.STOREFRONT, name: str | None = None) -> ApiKey:
    return principals.add_key(
        led,
        role=role,
        name=name or f"{role.value}-{uuid.uuid4().hex[:8]}",
        alg=Alg.ED25519,
        material=secrets.token_bytes(32),
    )


def opened(led: Ledger, owner: ApiKey, flags: AccountFlags = AccountFlags(0)) -> uuid.UUID:
    account_id = uuid.uuid4()
    result = ownership.open_account(
        led, Account(account_id, KES, 1, flags), principal_id=owner.principal_id
    )
    assert result.status == "created"
    return account_id


# -- idempotency_records ----------------------------------------------------------------


def lease_at(now_us: int, digest: str = "d1", lock_us: int = 10, ttl_us: int = 100) -> Lease:
    return Lease(digest, now_us, now_us + lock_us, now_us + ttl_us)


def test_a_record_is_inserted_once_per_scope_and_reads_back(ledger: Ledger) -> None:
    owner = principal(ledger)
    scope = Scope(owner.principal_id, "POST", "/v1/transfers", "k1")
    other_path = Scope(owner.principal_id, "POST", "/v1/accounts", "k1")

    assert in_tx(ledger, lambda tx: idem_repo.insert_in_progress(tx, scope, lease_at(5)))
    assert not in_tx(ledger, lambda tx: idem_repo.insert_in_progress(tx, scope, lease_at(6)))
    assert in_tx(ledger, lambda tx: idem_repo.insert_in_progress(tx, other_path, lease_at(7)))

    record = in_tx(ledger, lambda tx: idem_repo.lock_record(tx, scope))
    assert record == idem_repo.Record("d1", RecordState.IN_PROGRESS, None, 15, 105)
    missing = Scope(owner.principal_id, "POST", "/v1/transfers", "k2")
    assert in_tx(ledger, lambda tx: idem_repo.lock_record(tx, missing)) is None


def test_done_stores_the_answer_once_and_release_spares_it(ledger: Ledger) -> None:
    owner = principal(ledger)
    scope = Scope(owner.principal_id, "POST", "/v1/transfers", "k1")
    answer = StoredAnswer(201, {"location": "/v1/x"}, '{"name":"<b>Ñ</b>"}'.encode())
    in_tx(ledger, lambda tx: idem_repo.insert_in_progress(tx, scope, lease_at(5)))

    in_tx(ledger, lambda tx: idem_repo.mark_done(tx, scope, answer))
    in_tx(ledger, lambda tx: idem_repo.mark_done(tx, scope, StoredAnswer(500, {}, b"{}")))
    in_tx(ledger, lambda tx: idem_repo.delete_in_progress(tx, scope))

    record = in_tx(ledger, lambda tx: idem_repo.lock_record(tx, scope))
    assert record is not None
    assert record.state is RecordState.DONE
    assert record.answer == answer  # the first answer, markup and all, byte for byte


def test_take_over_and_extend_lease_rewrite_only_their_columns(ledger: Ledger) -> None:
    owner = principal(ledger)
    scope = Scope(owner.principal_id, "POST", "/v1/transfers", "k1")
    in_tx(ledger, lambda tx: idem_repo.insert_in_progress(tx, scope, lease_at(5)))
    in_tx(ledger, lambda tx: idem_repo.mark_done(tx, scope, StoredAnswer(200, {}, b"{}")))

    in_tx(ledger, lambda tx: idem_repo.take_over(tx, scope, lease_at(200, "d2")))
    taken = in_tx(ledger, lambda tx: idem_repo.lock_record(tx, scope))
    assert taken == idem_repo.Record("d2", RecordState.IN_PROGRESS, None, 210, 300)

    in_tx(ledger, lambda tx: idem_repo.extend_lease(tx, scope, lease_at(250, "ignored")))
    extended = in_tx(ledger, lambda tx: idem_repo.lock_record(tx, scope))
    assert extended == idem_repo.Record("d2", RecordState.IN_PROGRESS, None, 260, 300)


def test_expired_records_are_listed_soonest_first_up_to_the_limit(ledger: Ledger) -> None:
    owner = principal(ledger)
    scopes = [Scope(owner.principal_id, "POST", "/v1/transfers", f"k{i}") for i in range(3)]

    def insert(tx: Tx) -> None:
        for ttl_us, scope in zip((30, 10, 20), scopes, strict=True):
            assert idem_repo.insert_in_progress(tx, scope, lease_at(0, ttl_us=ttl_us))

    in_tx(ledger, insert)

    def expired(now_us: int, limit: int) -> list[str]:
        found = in_tx(ledger, lambda tx: idem_repo.select_expired(tx, now_us=now_us, limit=limit))
        assert all(s.principal_id == owner.principal_id for s in found)
        return [s.key for s in found]

    assert expired(9, 10) == []
    assert expired(10, 10) == ["k1"]
    assert expired(30, 2) == ["k1", "k2"]
    assert expired(30, 3) == ["k1", "k2", "k0"]

    in_tx(ledger, lambda tx: idem_repo.delete(tx, scopes[1]))
    assert expired(30, 3) == ["k2", "k0"]


def test_purge_deletes_at_most_its_batch(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """The batch limit on both sides, made small (the limit is this package's own)."""
    owner = principal(ledger)
    for i in range(3):
        scope = Scope(owner.principal_id, "POST", "/v1/transfers", f"k{i}")
        idempotency.claim(ledger, scope, digest="d", ttl_s=0, lock_s=0)
    monkeypatch.setattr(idem_service, "PURGE_BATCH_MAX", 2)
    assert idempotency.purge_expired(ledger) == 2
    assert idempotency.purge_expired(ledger) == 1
    assert idempotency.purge_expired(ledger) == 0


# -- principals and api_keys ---------------------------------------------------------------


def test_keys_round_trip_their_material_and_their_principals_role(ledger: Ledger) -> None:
    principal_id = uuid.uuid4()
    secret = bytes(range(256))  # not UTF-8: stored as base64
    name = "<script>alert(1)</script>"

    def write(tx: Tx) -> None:
        assert keys_repo.select_principal_id(tx, Role.OPERATOR, name) is None
        keys_repo.insert_principal(tx, principal_id, Role.OPERATOR, name)
        keys_repo.insert_key(tx, keys_repo.NewKey("k_a", principal_id, Alg.HMAC_SHA256, secret))

    in_tx(ledger, write)
    found = in_tx(ledger, lambda tx: keys_repo.select_key(tx, "k_a"))
    assert found == ApiKey("k_a", principal_id, Role.OPERATOR, Alg.HMAC_SHA256, secret, True)
    assert in_tx(ledger, lambda tx: keys_repo.select_principal_id(tx, Role.OPERATOR, name)) == (
        principal_id
    )
    assert in_tx(ledger, lambda tx: keys_repo.select_principal_id(tx, Role.AUDITOR, name)) is None
    assert in_tx(ledger, lambda tx: keys_repo.select_role(tx, principal_id)) is Role.OPERATOR
    assert in_tx(ledger, lambda tx: keys_repo.select_role(tx, uuid.uuid4())) is None
    assert in_tx(ledger, lambda tx: keys_repo.select_key(tx, "k_none")) is None


def test_a_revoked_key_stays_revoked(ledger: Ledger) -> None:
    key = principal(ledger)
    assert in_tx(ledger, lambda tx: keys_repo.lock_key_state(tx, key.key_id)) is KeyState.ACTIVE
    assert principals.revoke_key(ledger, key.key_id) is True
    assert principals.revoke_key(ledger, key.key_id) is False
    assert principals.revoke_key(ledger, "k_unknown") is False
    assert in_tx(ledger, lambda tx: keys_repo.lock_key_state(tx, key.key_id)) is KeyState.REVOKED
    assert in_tx(ledger, lambda tx: keys_repo.lock_key_state(tx, "k_unknown")) is None
    found = principals.find_key(ledger, key.key_id)
    assert found is not None and not found.active


def test_a_second_key_of_one_role_and_name_joins_its_principal(ledger: Ledger) -> None:
    first = principal(ledger, Role.AGENT, "agent one")
    second = principal(ledger, Role.AGENT, "agent one")
    other_role = principal(ledger, Role.STOREFRONT, "agent one")
    assert second.principal_id == first.principal_id
    assert second.key_id != first.key_id
    assert other_role.principal_id != first.principal_id
    assert principals.principal_role(ledger, first.principal_id) is Role.AGENT


@pytest.mark.parametrize(
    ("role", "name", "alg"),
    [
        (Role.AGENT, "agent", Alg.HMAC_SHA256),
        (Role.STOREFRONT, "", Alg.ED25519),
        (Role.STOREFRONT, "x" * (limits.NAME_LENGTH_MAX + 1), Alg.ED25519),
        (Role.STOREFRONT, "tab\there", Alg.ED25519),
    ],
)
def test_a_refused_key_writes_nothing(ledger: Ledger, role: Role, name: str, alg: Alg) -> None:
    with pytest.raises(KeyRefused) as refused:
        principals.add_key(ledger, role=role, name=name, alg=alg, material=bytes(32))
    assert isinstance(refused.value, Refused) and isinstance(refused.value, LedgerError)
    assert isinstance(refused.value, ValueError)
    assert str(refused.value) == refused.value.args[0]
    assert in_tx(ledger, lambda tx: keys_repo.select_principal_id(tx, role, name)) is None


def test_a_name_of_the_longest_length_is_taken(ledger: Ledger) -> None:
    name = "y" * limits.NAME_LENGTH_MAX
    key = principal(ledger, Role.AUDITOR, name)
    assert in_tx(ledger, lambda tx: keys_repo.select_principal_id(tx, Role.AUDITOR, name)) == (
        key.principal_id
    )


# -- account_owners -----------------------------------------------------------------------


def test_owner_rows_read_back_in_the_order_they_were_opened(ledger: Ledger) -> None:
    shop, other = principal(ledger), principal(ledger)
    mine = [opened(ledger, shop) for _ in range(3)]
    theirs = opened(ledger, other)

    assert in_tx(ledger, lambda tx: owners_repo.select_owner(tx, mine[0])) == shop.principal_id
    assert in_tx(ledger, lambda tx: owners_repo.select_owner(tx, uuid.uuid4())) is None

    def seq(account_id: uuid.UUID, principal_id: uuid.UUID | None) -> int | None:
        return in_tx(
            ledger, lambda tx: owners_repo.select_seq(tx, account_id, principal_id=principal_id)
        )

    first = seq(mine[0], shop.principal_id)
    assert first is not None
    assert seq(theirs, shop.principal_id) is None
    assert seq(theirs, None) is not None

    def ids(principal_id: uuid.UUID | None, after_seq: int, limit: int) -> list[uuid.UUID]:
        return in_tx(
            ledger,
            lambda tx: owners_repo.select_owned_ids(
                tx, principal_id=principal_id, after_seq=after_seq, limit=limit
            ),
        )

    assert ids(shop.principal_id, 0, 10) == mine
    assert ids(shop.principal_id, first, 1) == mine[1:2]
    assert ids(None, first, 10) == [*mine[1:], theirs]


def test_owned_pages_stop_at_their_limit_and_refuse_anothers_cursor(ledger: Ledger) -> None:
    shop, other = principal(ledger), principal(ledger)
    mine = [opened(ledger, shop) for _ in range(3)]
    theirs = opened(ledger, other)

    def page(after: uuid.UUID | None, limit: int) -> tuple[list[uuid.UUID], bool] | None:
        found = ownership.owned_accounts(
            ledger, principal_id=shop.principal_id, starting_after=after, limit=limit
        )
        return None if found is None else ([a.id for a in found.accounts], found.has_more)

    assert page(None, 3) == (mine, False)
    assert page(None, 2) == (mine[:2], True)
    assert page(mine[1], 2) == (mine[2:], False)
    assert page(None, 0) == ([], True)
    assert page(theirs, 2) is None
    assert page(uuid.uuid4(), 2) is None


def test_opening_anothers_account_id_answers_no_account(ledger: Ledger) -> None:
    shop, other = principal(ledger), principal(ledger)
    account_id = opened(ledger, shop)
    again = Account(account_id, KES, 1)
    assert ownership.open_account(ledger, again, principal_id=shop.principal_id).account
    answer = ownership.open_account(ledger, again, principal_id=other.principal_id)
    assert (answer.status, answer.account) == ("exists", None)
    assert in_tx(ledger, lambda tx: ownership.owner_of(tx, account_id)) == shop.principal_id


# -- the access rule's reads ----------------------------------------------------------------


class Transactions:
    """Counts the transactions a ledger opens (each still runs for real)."""

    def __init__(self, led: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = led.transact

        def counted(work: Callable[[Tx], Any]) -> Any:
            self.count += 1
            return real(work)

        monkeypatch.setattr(led, "transact", counted)

    def since(self, before: int) -> int:
        return self.count - before


def onboard_storefront(led: Ledger, owner: ApiKey) -> parties.Party:
    """A storefront party whose id is its principal's (as the API onboards them)."""
    return parties.onboard(
        led, party_id=owner.principal_id, kind=parties.Kind.STOREFRONT, name="shop", currency=KES
    )


def test_a_holder_says_owner_role_bound_and_party(ledger: Ledger) -> None:
    shop, operator = principal(ledger), principal(ledger, Role.OPERATOR)
    bounded = opened(ledger, shop, AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
    lent = opened(ledger, operator)
    escrow = onboard_storefront(ledger, shop).accounts["escrow"]
    unknown = uuid.uuid4()

    found = holders.holders_of(ledger, [bounded, lent, escrow, unknown])
    assert found == {
        bounded: holders.Holder(shop.principal_id, Role.STOREFRONT, bounded=True, party=False),
        lent: holders.Holder(operator.principal_id, Role.OPERATOR, bounded=False, party=False),
        escrow: None,  # a party's account no principal opened
        unknown: None,
    }
    assert holders.touches_party(ledger, [bounded, escrow]) is True
    assert holders.touches_party(ledger, [bounded, lent, unknown]) is False
    assert holders.touches_party(ledger, []) is False


def test_a_tenant_reads_its_own_and_its_partys_accounts_only(ledger: Ledger) -> None:
    shop, rival = principal(ledger), principal(ledger)
    own = opened(ledger, shop)
    escrow = onboard_storefront(ledger, shop).accounts["escrow"]
    rivals = opened(ledger, rival)

    assert holders.can_read_any(ledger, shop.principal_id, [own]) is True
    assert holders.can_read_any(ledger, shop.principal_id, [escrow]) is True
    assert holders.can_read_any(ledger, shop.principal_id, [rivals]) is False
    assert holders.can_read_any(ledger, shop.principal_id, [rivals, own]) is True
    assert holders.can_read_any(ledger, shop.principal_id, []) is False
    assert holders.can_read_any(ledger, rival.principal_id, [own, escrow]) is False
    assert access.can_read_account(ledger, rival, escrow) is False
    assert access.can_read_account(ledger, shop, escrow) is True
    assert in_tx(ledger, lambda tx: access.reads(tx, shop, own)) is True
    assert in_tx(ledger, lambda tx: access.reads(tx, rival, own)) is False


def test_each_access_check_is_one_transaction_the_flow_opens(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop, rival, operator = principal(ledger), principal(ledger), principal(ledger, Role.OPERATOR)
    bounded = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
    own, rivals = opened(ledger, shop, bounded), opened(ledger, rival)
    escrow = onboard_storefront(ledger, shop).accounts["escrow"]
    owners, seen = Owners(), Transactions(ledger, monkeypatch)

    before = seen.count
    assert access.can_read_account(ledger, rival, own) is False
    assert seen.since(before) == 1

    before = seen.count
    found = access.holders(ledger, [own, rivals, escrow, own], owners=owners)
    assert seen.since(before) == 1
    assert found[escrow] is None and found[own] is not None
    assert len(owners) == 2  # the party's account, owned by nobody, is not remembered

    before = seen.count
    access.holders(ledger, [own, rivals], owners=owners)
    assert seen.since(before) == 0  # remembered: no transaction at all

    transfer = Transfer(uuid.uuid4(), own, rivals, 5, KES, 1)
    before = seen.count
    assert access.check_transfers(ledger, shop, [transfer], owners=owners) == "apply"
    assert seen.since(before) == 0

    correction = Transfer(uuid.uuid4(), own, escrow, 5, KES, 1)
    before = seen.count
    assert access.check_transfers(ledger, operator, [correction], owners=owners) == "propose"
    assert seen.since(before) == 1

    before = seen.count
    assert access.can_read_transfer(ledger, rival, correction) is False
    assert seen.since(before) == 1


def test_the_access_edge_opens_no_transaction() -> None:
    """``api/access.py`` calls flows; ``transact`` is theirs to call (this finds one)."""
    tree = ast.parse((ROOT / "api" / "access.py").read_text())
    calls = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr == "transact"
    ]
    assert calls == []
    assert any(
        isinstance(n, ast.Attribute) and n.attr == "transact"
        for n in ast.walk(ast.parse("led.transact(lambda tx: 1)"))
    )


# -- the packages' surfaces and shape -------------------------------------------------------


@pytest.mark.parametrize("package", [idempotency, principals, ownership, holders])
def test_every_public_name_is_there(package: Any) -> None:
    assert package.__all__ == sorted(package.__all__, key=lambda n: (not n.isupper(), n))
    for name in package.__all__:
        assert getattr(package, name) is not None, name


def test_the_transactional_twins_keep_the_inner_functions_docstrings() -> None:
    for outer, inner in (
        (idempotency.claim, idempotency.claim_in),
        (idempotency.purge_expired, idempotency.purge_expired_in),
        (principals.add_key, principals.add_key_in),
        (principals.revoke_key, principals.revoke_key_in),
        (ownership.open_account, ownership.open_account_in),
        (holders.holders_of, holders.holders_of_in),
        (holders.can_read_any, holders.can_read_any_in),
        (holders.touches_party, holders.touches_party_in),
    ):
        assert outer.__doc__ == inner.__doc__
        assert outer.__doc__


@pytest.mark.parametrize(
    ("table", "package"),
    [
        ("idempotency_records", "ledger.flows.idempotency"),
        ("principals", "ledger.flows.principals"),
        ("api_keys", "ledger.flows.principals"),
        ("account_owners", "ledger.flows.ownership"),
    ],
)
def test_only_the_repository_names_its_tables(table: str, package: str) -> None:
    assert shape.owned_by(f"{package}.repository", table)
    assert not shape.owned_by(f"{package}.service", table)
    assert not shape.owned_by(package, table)
    folder = ROOT / package.replace(".", "/")
    naming = sorted(p.name for p in folder.glob("*.py") if table in shape.tables(p))
    assert naming == ["repository.py"]


# -- one logger name ------------------------------------------------------------------------


def test_api_and_webhooks_log_through_the_one_name(caplog: pytest.LogCaptureFixture) -> None:
    assert ledger_observability.LOGGER_NAME == "vledger.api"
    assert api_observability.LOGGER_NAME == ledger_observability.LOGGER_NAME
    assert delivery.LOGGER_NAME == ledger_observability.LOGGER_NAME
    assert api_observability.log.name == delivery.log.name == worker.log.name == "vledger.api"
    with caplog.at_level(logging.INFO, logger="vledger.api"):
        worker.log.info("from the worker")
    assert [r.name for r in caplog.records if r.message == "from the worker"] == ["vledger.api"]


def test_webhooks_import_nothing_of_the_api() -> None:
    probe = (
        "import sys, webhooks.worker, webhooks.delivery;"
        "print(sorted(m for m in sys.modules if m == 'api' or m.startswith('api.')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
