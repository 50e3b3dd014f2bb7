"""Test-suite settings shared by every test module."""

from __future__ import annotations

import os

from hypothesis import settings

# CI replays the same generated examples on every run (a submission must not land or fail by chance);
# local runs keep drawing new ones, which is how the fuzz tests find new bugs.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
