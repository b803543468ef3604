"""Where an agent gets its SMS: a phone and a language an operator sets
(``vledger sms contact``). Villagers need none: their phone and language are theirs."""

from __future__ import annotations

import uuid

from ledger import Ledger
from ledger.core.errors import MalformedRequest
from ledger.core.tx import Tx
from ledger.flows import parties, villagers
from ledger.flows.errors import NotFound
from ledger.flows.parties import Kind
from ledger.i18n import LANGUAGES
from sms import repository
from sms.repository import Contact

__all__ = ["set_agent_contact"]


def _set_in(tx: Tx, contact: Contact) -> Contact:
    found = parties.find_party(tx, contact.party_id)
    if found is None or found.kind != Kind.AGENT:
        raise NotFound("agent_not_found", f"no agent {contact.party_id}")
    repository.set_contact(tx, contact)
    return contact


def set_agent_contact(led: Ledger, *, agent_id: uuid.UUID, phone: str, language: str) -> Contact:
    """Send the agent's SMS to ``phone`` (E.164, normalised) in ``language``;
    :class:`MalformedRequest` for a bad phone or language, :class:`NotFound` for no agent."""
    if language not in LANGUAGES:
        raise MalformedRequest(f"language must be one of {', '.join(LANGUAGES)}")
    contact = Contact(agent_id, villagers.normalise_phone(phone), language)
    return led.transact(lambda tx: _set_in(tx, contact))
