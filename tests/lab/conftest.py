"""Fixtures for the lab's tests: lab databases in ``tmp_path`` (no sshd needed)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from cutover.lab.tools import samulab

CODES = ("13", "2A", "30")


@pytest.fixture
def lab_dir(tmp_path: Path) -> Path:
    """A lab folder with both platforms serving and three SAMUs nominal on legacy."""
    folder = tmp_path / "lab"
    samulab.create_lab_data(folder, CODES)
    return folder


@pytest.fixture
def lab(lab_dir: Path) -> Iterator[samulab.LabData]:
    data = samulab.LabData(lab_dir)
    yield data
    data.close()


@pytest.fixture
def rng() -> random.Random:
    return random.Random(15)
