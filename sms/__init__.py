"""SMS receipts and alerts: the outbox's villager- and agent-facing events rendered in the
recipient's language and sent through an Africa's Talking-shaped bulk SMS gateway."""
