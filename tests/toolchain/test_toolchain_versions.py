"""CANN version order and the two thresholds the drivers use."""

from __future__ import annotations

import pytest

from optimizer.toolchain.versions import at_least, is_version, release_line, version_key

ORDERED = [
    "20.1",
    "3.3.0",
    "5.0.2.alpha003",
    "5.0.2",
    "5.1.RC1",
    "6.0.RC1",
    "6.0.1",
    "6.3.RC1",
    "7.0.RC1.alpha001",
    "7.0.RC1",
    "7.0.0",
    "8.0.RC1",
    "8.0.RC2",
    "8.0.0",
    "8.5.0",
]


def test_versions_sort_in_release_order():
    assert sorted(reversed(ORDERED), key=version_key) == ORDERED


def test_missing_parts_count_as_zero():
    assert version_key("5.0.2") == version_key("5.0.2.0")
    assert version_key("8.0") == version_key("8.0.0")


@pytest.mark.parametrize("version, expected", [("5.1.RC1", False), ("6.0.RC1", False), ("6.0.1", True),
                                               ("6.3.RC1", True), ("8.0.RC1", True)])
def test_auto_tune_threshold(version, expected):
    assert at_least(version, "6.0.1") is expected


@pytest.mark.parametrize("version, line", [("5.0.2.alpha003", (5, 0)), ("6.0.RC1", (6, 0)), ("6.0.1", (6, 0)),
                                           ("8.0.RC1", (8, 0)), ("6.3.RC1", (6, 3))])
def test_release_line(version, line):
    assert release_line(version) == line


@pytest.mark.parametrize("text", ["", "latest", "RC1", "6..1", "v6.0.1", "6.0.1-beta"])
def test_not_versions(text):
    assert not is_version(text)
    with pytest.raises(ValueError):
        version_key(text)
