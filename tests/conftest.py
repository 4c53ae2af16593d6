import os

from hypothesis import settings

# Tests never reach a model hub: weights come from local files only.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Deterministic examples in CI (the same failures on every run); no per-example deadline,
# since a 2-core machine with a second process on it is slow and uneven.
settings.register_profile("ci", derandomize=True, deadline=None, max_examples=60)
settings.register_profile("dev", deadline=None, max_examples=100)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
