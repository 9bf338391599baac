"""The ledger's Redis-facing tests again, on a real Redis (database 15).

The Lua runs on the real interpreter here (fakeredis emulates it), with real ``TIME``.
The test functions are the unit ones; only the ``redis_client`` fixture differs.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from redis import Redis

from tests.unit.test_ledger import (  # noqa: F401  (collected again, on real Redis)
    ledger,
    test_all_or_nothing_gpu_fits_but_cpu_does_not,
    test_capacity_point_three_fits_three,
    test_clear_drops_all_leases,
    test_confirm,
    test_free_gpu_fractions_are_never_summed,
    test_half_capacity_fits_two,
    test_half_gpus_spread_over_two,
    test_keys_and_stored_format,
    test_lease_without_expiry_is_not_live,
    test_least_loaded_gpu_wins,
    test_mixed_projects_share_one_machine,
    test_release_frees_capacity,
    test_release_with_wrong_token_does_nothing,
    test_renew_keeps_lease_alive_past_its_ttl,
    test_reserve_again_with_same_token_is_idempotent,
    test_reserve_with_another_token_fails,
    test_unrenewed_lease_expires,
)

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:6379/15"


@pytest.fixture
def redis_client() -> Iterator[Redis]:
    """The real Redis at 127.0.0.1:6379, database 15, flushed before and after."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as e:
        client.close()
        pytest.fail(f"real Redis at {REDIS_URL} did not answer ({e}); start redis-server")
    client.flushdb()
    yield client
    client.flushdb()
    client.close()
