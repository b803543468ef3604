"""What an API process remembers between requests, and what it must never get wrong.

* keys (:class:`api.principals.KeyCache`): remembered ``ttl_s`` seconds, so a key revoked
  elsewhere is refused here at most that long after; one revoked here is refused at once;
  an unknown key id is never remembered;
* account owners (:class:`api.access.Owners`): remembered for ever (an owner row never
  changes), but an account without an owner is never remembered, and the cache never
  says yes for an account another principal owns.
"""

from __future__ import annotations

import threading
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.access import Owners, owns_all
from api.accounts import create_account
from api.principals import Alg, ApiKey, KeyCache, Role, add_key
from ledger import Account, Ledger, Status


def api_key(key_id: str = "k_1", *, active: bool = True) -> ApiKey:
    return ApiKey(key_id, uuid.uuid4(), Role.STOREFRONT, Alg.ED25519, bytes(32), active)


class Keys:
    """The database's answers, counted (stands in for ``find_key``)."""

    def __init__(self, *keys: ApiKey) -> None:
        self.rows = {k.key_id: k for k in keys}
        self.lookups = 0
        self.during_lookup: list[object] = []

    def __call__(self, key_id: str) -> ApiKey | None:
        self.lookups += 1
        for hook in self.during_lookup:
            assert callable(hook)
            hook()
        return self.rows.get(key_id)


class Monotonic:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


# -- keys -----------------------------------------------------------------------------


def test_a_key_is_remembered_for_ttl_then_looked_up_again() -> None:
    key = api_key()
    rows, time_s = Keys(key), Monotonic()
    cache = KeyCache(rows, ttl_s=2.0, monotonic=time_s)
    assert cache.find("k_1") == key
    time_s.now_s += 1.999
    assert cache.find("k_1") == key
    assert rows.lookups == 1
    time_s.now_s += 0.001
    assert cache.find("k_1") == key
    assert rows.lookups == 2


def test_a_key_revoked_elsewhere_is_refused_within_ttl() -> None:
    key = api_key()
    rows, time_s = Keys(key), Monotonic()
    cache = KeyCache(rows, ttl_s=2.0, monotonic=time_s)
    assert cache.find("k_1") == key
    rows.rows["k_1"] = api_key(active=False)  # another process revoked it
    time_s.now_s += 1.0
    assert cache.find("k_1") == key  # the documented delay
    time_s.now_s += 1.0
    found = cache.find("k_1")
    assert found is not None and not found.active


def test_a_key_revoked_here_is_forgotten_at_once() -> None:
    rows, time_s = Keys(api_key()), Monotonic()
    cache = KeyCache(rows, ttl_s=2.0, monotonic=time_s)
    cache.find("k_1")
    rows.rows["k_1"] = api_key(active=False)
    cache.forget("k_1")
    found = cache.find("k_1")
    assert found is not None and not found.active


def test_a_lookup_that_raced_a_revocation_is_not_remembered() -> None:
    rows, time_s = Keys(api_key()), Monotonic()
    cache = KeyCache(rows, ttl_s=2.0, monotonic=time_s)

    def revoked_meanwhile() -> None:
        # The lookup read the active row; the revocation commits and forgets it now.
        rows.during_lookup.clear()
        cache.forget("k_1")

    rows.during_lookup.append(revoked_meanwhile)
    first = cache.find("k_1")
    assert first is not None and first.active
    rows.rows["k_1"] = api_key(active=False)
    found = cache.find("k_1")
    assert found is not None and not found.active
    assert rows.lookups == 2


def test_unknown_keys_are_not_remembered_and_a_new_key_is_found_at_once() -> None:
    rows, time_s = Keys(), Monotonic()
    cache = KeyCache(rows, ttl_s=2.0, monotonic=time_s)
    assert cache.find("k_new") is None
    rows.rows["k_new"] = api_key("k_new")
    assert cache.find("k_new") == rows.rows["k_new"]


def test_the_key_cache_is_bounded_and_ttl_zero_turns_it_off() -> None:
    keys = [api_key(f"k_{i}") for i in range(3)]
    rows, time_s = Keys(*keys), Monotonic()
    cache = KeyCache(rows, ttl_s=2.0, size_max=2, monotonic=time_s)
    for k in keys:
        cache.find(k.key_id)
    assert cache.cached("k_0") is None  # the least recently used went
    assert cache.cached("k_2") == keys[2]
    off = KeyCache(rows, ttl_s=0, monotonic=time_s)
    off.find("k_0")
    off.find("k_0")
    assert off.cached("k_0") is None
    assert rows.lookups == 5


def test_the_key_cache_is_shared_by_threads() -> None:
    keys = [api_key(f"k_{i}") for i in range(50)]
    rows = Keys(*keys)
    cache = KeyCache(rows, ttl_s=60.0, size_max=20)
    errors: list[BaseException] = []

    def hammer(offset: int) -> None:
        try:
            for i in range(2000):
                k = keys[(i * 7 + offset) % len(keys)]
                assert cache.find(k.key_id) == k
                if i % 97 == 0:
                    cache.forget(k.key_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# -- account owners -------------------------------------------------------------------


def principals(led: Ledger, count: int) -> list[ApiKey]:
    return [
        add_key(
            led,
            role=Role.STOREFRONT,
            name=f"shop-{uuid.uuid4().hex[:8]}",
            alg=Alg.ED25519,
            material=bytes(32),
        )
        for _ in range(count)
    ]


def open_account(led: Ledger, owner: ApiKey, account_id: uuid.UUID) -> None:
    created = create_account(led, owner, Account(account_id, "KES", 1))
    assert created.status is Status.CREATED


def test_an_account_without_owner_is_not_remembered(ledger: Ledger) -> None:
    alice, bob = principals(ledger, 2)
    owners = Owners()
    later = uuid.uuid4()
    assert owns_all(ledger, alice, [later], owners=owners) == later
    assert len(owners) == 0
    open_account(ledger, alice, later)
    assert owns_all(ledger, alice, [later], owners=owners) is None
    assert owns_all(ledger, bob, [later], owners=owners) == later
    assert len(owners) == 1


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["open", "ask"]), st.integers(0, 3), st.integers(0, 2)),
        min_size=1,
        max_size=14,
    ),
    size_max=st.integers(1, 3),
)
def test_the_owner_cache_never_says_yes_for_another_principals_account(
    ledger: Ledger, steps: list[tuple[str, int, int]], size_max: int
) -> None:
    """Opening accounts and asking about them in any order, with any cache size, answers
    exactly what the owner rows say (a plain dict is the model)."""
    keys = principals(ledger, 3)
    slots = [uuid.uuid4() for _ in range(4)]
    owners = Owners(size_max=size_max)
    model: dict[uuid.UUID, uuid.UUID] = {}
    for action, slot, who in steps:
        account, caller = slots[slot], keys[who]
        if action == "open":
            if account not in model:
                open_account(ledger, caller, account)
                model[account] = caller.principal_id
            continue
        owned = model.get(account) == caller.principal_id
        asked = [account, *(a for a in slots[:slot] if model.get(a) == caller.principal_id)]
        first_foreign = owns_all(ledger, caller, asked, owners=owners)
        assert (first_foreign is None) == owned
        if not owned:
            assert first_foreign == account
    assert len(owners) <= size_max
