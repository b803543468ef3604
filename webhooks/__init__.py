"""Signed webhooks: the outbox delivered to storefronts (moving here from api/webhooks.py)."""
