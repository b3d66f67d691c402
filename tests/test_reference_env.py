"""tests.reference.install_or_skip: without its MMAction2 reference a parity test skips, and
fails under CI=true. A real pip run against an unreachable index (127.0.0.1, port 9)."""

from __future__ import annotations

import pytest

from tests.reference import in_ci, install_or_skip


@pytest.fixture
def no_index(monkeypatch):
    """pip sees only a closed port on 127.0.0.1: the install fails fast, as without PyPI."""
    for k, v in {
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
        "PIP_EXTRA_INDEX_URL": "",
        "PIP_FIND_LINKS": "",
        "PIP_NO_CACHE_DIR": "1",
        "PIP_RETRIES": "0",
        "PIP_TIMEOUT": "2",
        "PIP_CONFIG_FILE": "/dev/null",
    }.items():
        monkeypatch.setenv(k, v)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("True", True), ("1", True), ("false", False), ("", False), (None, False)],
)
def test_in_ci(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert in_ci() is expected


def test_missing_reference_skips_outside_ci(no_index, monkeypatch, tmp_path):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="cannot install the MMAction2 0.24.1"):
        install_or_skip("0.24.1", tmp_path / "ref")
    assert not (tmp_path / "ref").exists()  # nothing half-installed left behind


def test_missing_reference_fails_under_ci(no_index, monkeypatch, tmp_path):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true: a parity test must not be skipped"):
        install_or_skip("1.2.0", tmp_path / "ref")
    assert not (tmp_path / "ref").exists()


def test_a_broken_install_folder_is_an_error_not_a_skip(no_index, monkeypatch, tmp_path):
    monkeypatch.delenv("CI", raising=False)
    (tmp_path / "ref").mkdir()
    with pytest.raises(FileExistsError, match="holds no mmaction2 0.24.1"):
        install_or_skip("0.24.1", tmp_path / "ref")


def test_unknown_version_is_an_error(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(ValueError, match="unknown MMAction2 reference version '0.9'"):
        install_or_skip("0.9")
