"""Targets shared by the shell and pdb tests (apps mounted read-only at /wapps)."""

import pytest

from tests.console.common import MOUNT


@pytest.fixture
def plain(app):
    """The plain app: its main thread works in Python, a counter goes up."""
    return app("python3", "-u", "/wapps/plainapp.py", extra=MOUNT, ready="app ready")
