import sys

import pytest

from kinema.core import reset_plugins


@pytest.fixture
def plugin_path(tmp_path, monkeypatch):
    """A folder on sys.path for test distributions; plugins are reloaded around the test."""
    monkeypatch.syspath_prepend(str(tmp_path))
    reset_plugins()
    yield tmp_path
    sys.modules.pop("good_plugin", None)
    reset_plugins()
