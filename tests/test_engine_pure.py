"""The engine on its own: the pure state machine (``ledger.core.engine``) with no database
and no store, beside the reference model (tests/model.py), which shares none of its logic.

Hypothesis draws accounts and one batch of transfers (plain, holds, posts and voids of
holds made earlier in the batch, reversals, replays, linked chains, refusals of every
kind); the engine's ``TransferBatch`` runs over accounts loaded as a store would load
them, the model over the same accounts. Their statuses must agree event by event, and
their counters account by account; and the engine's own answer must keep the money
invariants (per currency, debits equal credits, posted and pending).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import Account, AccountFlags, Status, Transfer, TransferFlags
from ledger.core.engine import (
    AccountState,
    ChainOutcome,
    Loaded,
    StoredAccount,
    TransferBatch,
    chain_outcome,
    chains,
    create_accounts_in_memory,
)
from ledger.core.store import to_us
from tests.model import COUNTER_MAX, LedgerModel

TF = TransferFlags
AF = AccountFlags
NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
S = Status

ACCOUNT_FLAGS = [
    AF(0),
    AF.DEBITS_MUST_NOT_EXCEED_CREDITS,
    AF.CREDITS_MUST_NOT_EXCEED_DEBITS,
]
AMOUNTS = st.one_of(
    st.integers(min_value=0, max_value=500),
    st.sampled_from([COUNTER_MAX // 2, COUNTER_MAX - 1, COUNTER_MAX]),
)


@st.composite
def accounts(draw: st.DrawFn) -> list[Account]:
    """Two to five accounts, mostly KES, one maybe in UGX, with limit flags drawn."""
    count = draw(st.integers(min_value=2, max_value=5))
    return [
        Account(
            uuid.uuid4(),
            draw(st.sampled_from(["KES", "KES", "KES", "UGX"])),
            1,
            draw(st.sampled_from(ACCOUNT_FLAGS)),
        )
        for _ in range(count)
    ]


@st.composite
def batch(draw: st.DrawFn, known: list[Account]) -> list[Transfer]:
    """Up to twelve transfers; later ones may name earlier ones (posts, voids,
    reversals, replays), and any may be linked to the next."""
    ids = [a.id for a in known] + [uuid.uuid4()]  # one account that does not exist
    made: list[Transfer] = []
    for _ in range(draw(st.integers(min_value=1, max_value=12))):
        made.append(draw(_transfer(ids, made, known)))
    return made


def _transfer(
    ids: list[uuid.UUID], made: list[Transfer], known: list[Account]
) -> st.SearchStrategy[Transfer]:
    earlier = [t.id for t in made] or [uuid.uuid4()]
    linked = st.sampled_from([TF(0), TF(0), TF.LINKED])

    @st.composite
    def movement(draw: st.DrawFn) -> Transfer:
        debit, credit = draw(st.sampled_from(ids)), draw(st.sampled_from(ids))
        currency = next((a.currency for a in known if a.id == debit), "KES")
        kind = draw(st.sampled_from([TF(0), TF(0), TF.PENDING]))
        reverses = draw(st.one_of(st.none(), st.none(), st.sampled_from(earlier)))
        return Transfer(
            uuid.uuid4(),
            debit,
            credit,
            draw(AMOUNTS),
            draw(st.sampled_from([currency, currency, "UGX"])),
            draw(st.sampled_from([1, 1, 0])),
            kind | draw(linked),
            timeout_s=draw(st.sampled_from([0, 60])) if kind else 0,
            reverses_id=reverses,
        )

    @st.composite
    def resolution(draw: st.DrawFn) -> Transfer:
        return Transfer(
            uuid.uuid4(),
            None,
            None,
            draw(st.one_of(st.none(), AMOUNTS)),
            None,
            1,
            draw(st.sampled_from([TF.POST_PENDING, TF.VOID_PENDING])) | draw(linked),
            pending_id=draw(st.sampled_from(earlier)),
        )

    @st.composite
    def reversal(draw: st.DrawFn) -> Transfer:
        moves = [t for t in made if t.debit_account_id is not None and t.amount is not None]
        if not moves:
            return draw(movement())
        target = draw(st.sampled_from(moves))
        assert target.amount is not None and target.credit_account_id is not None
        return Transfer(
            uuid.uuid4(),
            target.credit_account_id,
            target.debit_account_id,
            min(COUNTER_MAX, max(1, target.amount + draw(st.sampled_from([-1, 0, 0, 1])))),
            target.currency,
            1,
            draw(linked),
            reverses_id=target.id,
        )

    replay = st.sampled_from(made) if made else movement()
    return st.one_of(movement(), movement(), resolution(), reversal(), replay)


def _loaded(known: list[Account]) -> Loaded:
    """The accounts as a store loads them for a batch: fresh, nothing else exists."""
    states = {
        a.id: AccountState(a.id, a.currency, a.flags.value, 0, 0, 0, 0, to_us(NOW)) for a in known
    }
    return Loaded(states, existing={}, holds={}, spent=set(), expired_holds=[])


def _model(known: list[Account]) -> LedgerModel:
    model = LedgerModel()
    assert model.create_accounts(known, NOW) == [S.CREATED] * len(known)
    return model


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_the_engine_answers_as_the_model_does(data: st.DataObject) -> None:
    known = data.draw(accounts())
    transfers = data.draw(batch(known))
    loaded = _loaded(known)
    outcome = TransferBatch(loaded, to_us(NOW)).run(transfers)
    model = _model(known)
    assert [r.status for r in outcome.results] == model.create_transfers(transfers, NOW)
    for expected in model.lookup_accounts([a.id for a in known], NOW):
        state = loaded.accounts[expected.id]
        assert state.counters() == (
            expected.debits_pending,
            expected.debits_posted,
            expected.credits_pending,
            expected.credits_posted,
        )


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_every_batch_keeps_debits_equal_to_credits(data: st.DataObject) -> None:
    known = data.draw(accounts())
    loaded = _loaded(known)
    TransferBatch(loaded, to_us(NOW)).run(data.draw(batch(known)))
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for state in loaded.accounts.values():
        for i, value in enumerate(state.counters()):
            totals[state.currency][i] += value
    for debits_pending, debits_posted, credits_pending, credits_posted in totals.values():
        assert (debits_pending, debits_posted) == (credits_pending, credits_posted)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_account_creation_answers_as_the_model_does(data: st.DataObject) -> None:
    existing = data.draw(accounts())
    fresh = data.draw(accounts())
    pool = existing + fresh
    batch_ = [
        Account(
            data.draw(st.sampled_from([a.id for a in pool])),
            data.draw(st.sampled_from(["KES", "UGX", "XXX"])),
            data.draw(st.sampled_from([1, 1, 0, 2])),
            data.draw(st.sampled_from([*ACCOUNT_FLAGS, AF.LINKED, AF(6)])),
        )
        for _ in range(data.draw(st.integers(min_value=1, max_value=8)))
    ]
    stored = {a.id: StoredAccount(a.id, a.currency, a.code, a.flags.value) for a in existing}
    results, to_insert = create_accounts_in_memory(batch_, stored)
    model = _model(existing)
    answers = model.create_accounts(batch_, NOW)
    assert [r.status for r in results] == answers
    created = [a.id for a, answer in zip(batch_, answers, strict=True) if answer is S.CREATED]
    assert [a.id for a in to_insert] == created


def test_chains_split_a_batch_by_its_linked_flags() -> None:
    assert list(chains([0, 1, 1, 0, 0, 1])) == [(0, 0), (1, 3), (4, 4), (5, None)]
    assert list(chains([])) == []
    assert list(chains([1])) == [(0, None)]


def test_a_chain_fails_at_its_first_exists_when_it_mixes_replays_with_news() -> None:
    answers = [S.EXISTS, S.CREATED]
    assert chain_outcome(lambda i: answers[i], 0, 1) == ChainOutcome(0, S.EXISTS)
    answers = [S.CREATED, S.EXISTS]
    assert chain_outcome(lambda i: answers[i], 0, 1) == ChainOutcome(1, S.EXISTS)
    answers = [S.EXISTS, S.EXISTS]
    assert chain_outcome(lambda i: answers[i], 0, 1) == ChainOutcome(None, S.EXISTS)
    answers = [S.CREATED, S.EXCEEDS_CREDITS, S.CREATED]
    assert chain_outcome(lambda i: answers[i], 0, 2) == ChainOutcome(1, S.EXCEEDS_CREDITS)
