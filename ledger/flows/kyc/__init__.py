"""KYC operator tasks: a villager's tier and the tiers' limits, maker-checker.

What a tier allows is :mod:`ledger.flows.limits`' (the ``kyc_tiers`` rows and their
checks); this module decides who may change a villager's tier or a tier's limits:

- **to tier0** (:data:`~ledger.flows.villagers.REGISTRATION_TIER`, the tier an agent
  registers a villager at): one operator, applied at once. Lowering is safe: tier0 is
  the least a villager may move, so the change can only restrict her (the money in her
  wallet stays hers; later credits above tier0's balance are refused).
- **to any other tier** (a raise): a proposal of kind :data:`KYC_TIER`, which a
  different operator approves; the approval runs
  :func:`ledger.flows.limits.set_kyc_tier_in` in its transaction.
- **a tier's limits** (tier0's too, or a new tier in a currency): a proposal of kind
  :data:`TIER_LIMITS`; the approval runs :func:`ledger.flows.limits.set_tier_limits_in`.

A proposal that could never apply is refused when made (an unknown villager, a tier
without limits in her currency, malformed or inconsistent limits), and applying it
checks again. The maker is never the checker (:mod:`ledger.flows.proposals`). Events:
``kyc.tier_changed`` and ``kyc.tier_limits_changed``, in the transaction that changes.

This module writes no SQL of its own.
"""

from ledger.flows.kyc.service import (
    KYC_TIER,
    TIER_LIMITS,
    change_tier,
    onboard,
    onboard_in,
    propose_tier_limits,
)

__all__ = ["KYC_TIER", "TIER_LIMITS", "change_tier", "onboard", "onboard_in", "propose_tier_limits"]
