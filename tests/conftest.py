"""Fixtures shared by the whole test suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Never let a test wait on the Hugging Face hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

#: Real data beside the checkout (`../shared/data`); an outside user has none, so tests using it skip.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The real-data folder, or skip the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA
