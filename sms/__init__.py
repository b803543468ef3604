"""SMS receipts and alerts: the outbox's villager- and agent-facing events rendered in the
recipient's language and sent through an Africa's Talking-shaped bulk SMS gateway.

Who gets what (:mod:`sms.render`)
    A villager, at the phone and in the language of its ``villagers`` row: every wallet
    movement (credit, debit, hold, release, with the balance after it), its activation
    code (the one secret an SMS carries, to the villager's own phone only; operators see
    it masked), a locked PIN, a withdrawal or pay code made in its name (that a code
    exists, not its digits: they are in no event), its order delivered or refunded. An
    agent, at the phone an operator set (``vledger sms contact``): low float, a cash-out
    requested at its station. A PIN is in no event, so in no SMS. Money by
    :func:`ledger.money.format_money`, times in the phone's country's zone (Kenya:
    ``Africa/Nairobi``) or ``$VLEDGER_SMS_ZONE``; words from the ``sms`` catalogs.

Length (:mod:`sms.encoding`)
    160 GSM-7 septets (extension characters count two) or 70 UCS-2 units in one
    message; longer texts go as parts of 153 / 67. A text is cut at
    :attr:`~sms.settings.SmsSettings.parts_max` parts; names at 30 characters.

Sending (:mod:`sms.delivery`, :mod:`sms.gateway`)
    A cursor over the outbox (``sms_cursor``, the webhooks' gap rule) queues one
    ``sms_messages`` row per event and phone (unique: a replayed pass queues and sends
    nothing twice). Due messages are leased and POSTed one per request (``username``,
    ``to``, ``message``, ``from``; header ``apiKey``); the answer's recipient entry is
    read back (status code, status, message id, cost). Sent on 100/101/102; retried with
    exponential, capped, jittered backoff on no answer, HTTP 429/5xx and retryable
    recipient statuses; failed at once on other refusals (one number's refusal holds no
    other back) or after ``attempts_max``. Every attempt is an ``sms_attempts`` row.

Settings (:mod:`sms.settings`)
    ``VLEDGER_SMS_URL``, ``VLEDGER_SMS_USERNAME``, ``VLEDGER_SMS_API_KEY`` (all three, or
    nothing is sent: messages stay queued, visible in ``vledger sms outbox``, and the
    worker says so once), ``VLEDGER_SMS_SENDER_ID`` (optional ``from``),
    ``VLEDGER_SMS_ZONE``. ``vledger worker`` always runs the SMS worker; ``vledger
    serve`` runs it only when a gateway is set.
"""

from sms.delivery import queue_new, send_due
from sms.settings import Gateway, SmsSettings, gateway_from_env
from sms.worker import SmsWorker, run_sms_worker, start_sms_worker

__all__ = [
    "Gateway",
    "SmsSettings",
    "SmsWorker",
    "gateway_from_env",
    "queue_new",
    "run_sms_worker",
    "send_due",
    "start_sms_worker",
]
