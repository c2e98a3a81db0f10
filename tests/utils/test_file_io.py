"""Where freezedet writes derived files: a user cache directory, not the installation."""

import os
import sys

import pytest

from freezedet.utils.file_io import cache_root


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="the XDG layout of Linux / Unix")
def test_cache_root_is_the_user_cache_directory(monkeypatch, tmp_path):
    monkeypatch.delenv("FREEZEDET_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == str(tmp_path / "home" / ".cache" / "freezedet")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == str(tmp_path / "xdg" / "freezedet")
    monkeypatch.setenv("FREEZEDET_CACHE", str(tmp_path / "mine"))
    assert cache_root() == str(tmp_path / "mine")
    assert not cache_root().startswith(sys.prefix)
    assert not os.path.exists(cache_root())  # nothing is created by asking
