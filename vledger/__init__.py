"""The ``vledger`` command line: an edge over ``ledger``, ``api`` and ``reconciliation``."""
