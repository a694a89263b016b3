"""Database helpers with no business rules in them, for every layer that writes rows: the
pipelines' batch stores and the hub's outbox and processing tables. It sits above
``schemas`` and below ``pipelines`` and ``hub`` (tests/unit/test_layering.py)."""
