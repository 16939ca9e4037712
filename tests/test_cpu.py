import os

import pytest

from denoisekit import cpu


def test_usable_cores_follow_the_affinity_not_the_machine(monkeypatch):
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity on this OS")
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {5})
    assert cpu.usable_cores() == 1


def test_usable_cores_without_affinity_count_the_machine(monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    assert cpu.usable_cores() == 3
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # "undeterminable"
    assert cpu.usable_cores() == 1
