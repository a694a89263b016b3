"""Benchmarks: they run the hub on its embedded defaults, which production refuses
(hub/production.py), so every hub process they start runs with the test profile."""

import os

os.environ.setdefault("HUB_PROFILE", "test")
