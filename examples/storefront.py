"""A storefront's integration: create an order, read it back (``api.client`` signs).

python examples/storefront.py URL KEY_ID KEY_FILE VILLAGER_ID
(or VLEDGER_URL, VLEDGER_KEY_ID, VLEDGER_KEY_FILE, VLEDGER_VILLAGER_ID)
"""

import os
import sys
import uuid

from api.client import Client

names = ("VLEDGER_URL", "VLEDGER_KEY_ID", "VLEDGER_KEY_FILE", "VLEDGER_VILLAGER_ID")
url, key_id, key_file, villager_id = sys.argv[1:5] or [os.environ[n] for n in names]

with Client.from_key_file(url, key_id, key_file) as vledger:
    order = {
        "id": str(uuid.uuid4()),  # your permanent id: sending it again is safe
        "currency": "KES",
        "amount_minor": 120_000,  # KSh 1,200.00: integer minor units, never a float
        "delivery_method": "agent_delivery",
        "villager_id": villager_id,
    }
    vledger.request("POST", "/v1/orders", json_body=order).raise_for_status()
    found = vledger.request("GET", f"/v1/orders/{order['id']}")
    print(found.raise_for_status().text)  # the order as JSON: id, status, amounts ...
