"""The capacity ledger's pure parts: the fitting rule, micro-units, a lease as a dict.

Everything that needs a Redis is in tests/integration/test_ledger.py, which runs each
test on fakeredis and on the real Redis.
"""

from __future__ import annotations

import json
import math

import pytest

from tasks.ledger import MICRO, Lease, fit_cpu, fit_gpu, to_micro

M = "gpu-box"


# -- the pure rule ------------------------------------------------------------------------


def test_to_micro_rounds_down_so_floor_of_inverse_fits() -> None:
    for c in (1 / 6, 1 / 3, 0.3, 0.25, 0.1, 1 / 7, 0.57, 1.0):
        assert math.floor(1 / c) * to_micro(c) <= MICRO
    assert to_micro(0.3) == 300_000
    assert to_micro(0.57) == 570_000
    assert to_micro(1.0) == MICRO


def test_fit_cpu() -> None:
    assert fit_cpu(500_000, 500_000)
    assert not fit_cpu(500_001, 500_000)


@pytest.mark.parametrize(
    ("used", "share", "expected"),
    [
        ([0, 0], 500_000, 0),
        ([500_000, 0], 500_000, 1),
        ([500_000, 500_000], 500_000, 0),
        ([MICRO, 500_000], 500_000, 1),
        ([MICRO, MICRO], 500_000, None),
        ([500_000, 500_000], MICRO, None),
        ([300_000, 200_000, 200_000], 300_000, 1),
        ([], 1, None),
    ],
)
def test_fit_gpu(used: list[int], share: int, expected: int | None) -> None:
    assert fit_gpu(used, share) == expected


# -- the lease as data ----------------------------------------------------------------


def test_lease_round_trips_through_dict() -> None:
    lease = Lease(owner="e", machine=M, token="t", cpu=0.5, gpu=1, gpu_share=0.25)
    assert Lease.from_dict(lease.to_dict()) == lease
    cpu_only = Lease(owner="e", machine=M, token="t", cpu=0.5)
    assert Lease.from_dict(json.loads(json.dumps(cpu_only.to_dict()))) == cpu_only
