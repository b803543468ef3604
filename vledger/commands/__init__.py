"""The ``vledger`` commands, a module per group; :mod:`vledger.cli` lists them."""
