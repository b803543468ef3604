"""Load for the crash test (``tests/test_crash_recovery.py``), run as a subprocess.

    python tests/crash_load.py URL LOG [--seconds S] [--threads N] [--seed N]

Opens the (already migrated) ledger at ``URL``, makes sure the accounts and their
funding exist (fixed ids, so a restart answers ``exists``), then runs ``--threads``
threads sharing one ``Ledger`` (the group-commit path), each submitting in a loop: single
transfers wallet to wallet, 2-transfer linked chains through the escrow, holds, and posts
and voids of its own holds. ``--seconds 0`` (the default) runs until killed.

Two append-only logs, each line written with one ``os.write`` (no buffering in this
process, so a SIGKILL loses nothing written; the test kills the process, not the
machine, so no fsync is needed):

- ``LOG.intent``, written BEFORE each call, one line per transfer:
  ``<call> <id> <flags> <debit> <credit> <amount> <pending_id>`` (``-`` for None);
- ``LOG``, written only AFTER ``create_transfers`` returned: ``<id> <status>`` per
  transfer.

So every ``created`` in ``LOG`` must be in the database; a call that was committed but
not yet logged when the kill came shows up as an intent without results.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Sequence

from ledger import Account, AccountFlags, Ledger, Status, Transfer, TransferFlags, open_ledger

NAMESPACE = uuid.UUID("8d3f0c55-4a3e-4c1b-9a55-0c7ac2a51e01")
CURRENCY = "KES"
CODE = 7
WALLET_COUNT = 8
WALLET_FUNDING = 100_000
AMOUNT_MAX = 20_000

BANK = uuid.uuid5(NAMESPACE, "bank")
ESCROW = uuid.uuid5(NAMESPACE, "escrow")
WALLETS = [uuid.uuid5(NAMESPACE, f"wallet-{i}") for i in range(WALLET_COUNT)]
ACCOUNTS = [BANK, ESCROW, *WALLETS]
FUNDINGS = [uuid.uuid5(NAMESPACE, f"funding-{i}") for i in range(WALLET_COUNT)]

F = TransferFlags
LIMITED = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS


def _field(value: object) -> str:
    return "-" if value is None else str(value)


class Logs:
    """The two append-only logs; one ``os.write`` per call and per log."""

    def __init__(self, path: str) -> None:
        mode = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        self._intents = os.open(path + ".intent", mode, 0o644)
        self._results = os.open(path, mode, 0o644)
        self._lock = threading.Lock()

    def submit(self, led: Ledger, transfers: Sequence[Transfer]) -> list[Status]:
        call = uuid.uuid4().hex
        intent = "".join(
            f"{call} {t.id} {t.flags.value} {_field(t.debit_account_id)}"
            f" {_field(t.credit_account_id)} {_field(t.amount)} {_field(t.pending_id)}\n"
            for t in transfers
        )
        with self._lock:
            os.write(self._intents, intent.encode())
        statuses = [r.status for r in led.create_transfers(transfers)]
        done = "".join(f"{t.id} {s}\n" for t, s in zip(transfers, statuses, strict=True))
        with self._lock:
            os.write(self._results, done.encode())
        return statuses


def setup(led: Ledger, logs: Logs) -> None:
    """The accounts and the wallets' funding; idempotent (fixed ids)."""
    accounts = [Account(BANK, CURRENCY, CODE), Account(ESCROW, CURRENCY, CODE, LIMITED)]
    accounts += [Account(w, CURRENCY, CODE, LIMITED) for w in WALLETS]
    statuses = {r.status for r in led.create_accounts(accounts)}
    assert statuses <= {Status.CREATED, Status.EXISTS}, statuses
    funding = [
        Transfer(f, BANK, w, WALLET_FUNDING, CURRENCY, CODE)
        for f, w in zip(FUNDINGS, WALLETS, strict=True)
    ]
    statuses = set(logs.submit(led, funding))
    assert statuses <= {Status.CREATED, Status.EXISTS}, statuses


def load(led: Ledger, logs: Logs, seed: int, deadline: float | None) -> None:
    """One thread's loop: transfers, chains, holds, and posts and voids of its holds."""
    rng = random.Random(seed)
    holds: list[tuple[uuid.UUID, int]] = []
    while deadline is None or time.monotonic() < deadline:
        a, b = rng.sample(WALLETS, 2)
        amount = rng.randint(1, AMOUNT_MAX)
        pick = rng.random()
        if pick < 0.2 and holds:
            hold_id, held = holds.pop(rng.randrange(len(holds)))
            if rng.random() < 0.6:
                posted = rng.choice((None, rng.randint(1, held)))
                t = Transfer(
                    uuid.uuid4(), None, None, posted, None, CODE, F.POST_PENDING, pending_id=hold_id
                )
            else:
                t = Transfer(
                    uuid.uuid4(), None, None, None, None, CODE, F.VOID_PENDING, pending_id=hold_id
                )
            logs.submit(led, [t])
        elif pick < 0.4:
            t = Transfer(uuid.uuid4(), a, b, amount, CURRENCY, CODE, F.PENDING)
            if logs.submit(led, [t]) == [Status.CREATED]:
                holds.append((t.id, amount))
        elif pick < 0.6:
            logs.submit(
                led,
                [
                    Transfer(uuid.uuid4(), a, ESCROW, amount, CURRENCY, CODE, F.LINKED),
                    Transfer(uuid.uuid4(), ESCROW, b, amount, CURRENCY, CODE),
                ],
            )
        else:
            logs.submit(led, [Transfer(uuid.uuid4(), a, b, amount, CURRENCY, CODE)])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("url")
    parser.add_argument("log")
    parser.add_argument("--seconds", type=float, default=0.0, help="0: until killed")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    deadline = time.monotonic() + args.seconds if args.seconds > 0 else None
    led = open_ledger(args.url)
    logs = Logs(args.log)
    failed = threading.Event()

    def run(index: int) -> None:
        try:
            load(led, logs, seed + index, deadline)
        except BaseException:
            traceback.print_exc()
            failed.set()
            os._exit(3)  # a leaked exception: the test must see it, not a clean exit

    try:
        setup(led, logs)
        print(f"crash_load: seed {seed}, {args.threads} threads", flush=True)
        threads = [threading.Thread(target=run, args=(i,)) for i in range(args.threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        led.close()
    return 3 if failed.is_set() else 0


if __name__ == "__main__":
    sys.exit(main())
