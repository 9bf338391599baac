"""The capacity ledger on Redis: capacity, GPUs, leases, expiry and renewal, storage.

Every test runs twice through the `redis_client` fixture: on fakeredis (its Lua is
emulated) and on the real Redis (the real Lua interpreter and ``TIME``), so a new test
is checked on both. The fitting rule itself is tested without Redis in
tests/unit/test_ledger.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlencode

import fakeredis
import pytest
from redis import Redis
from redis.connection import parse_url

from tasks.ledger import MICRO, Ledger, Usage
from tests.waiting import wait_for

M = "gpu-box"


def own_database(url: str) -> str:
    """`url` (the suite's Redis) with a database of these tests' own, never the suite's.

    The database goes in the query: redis-py reads ``?db=`` before the path, for
    ``redis://`` and ``unix://`` URLs alike.
    """
    number = 14 if int(parse_url(url).get("db", 0)) == 15 else 15
    base, _, query = url.partition("?")
    kept = [(key, value) for key, value in parse_qsl(query) if key != "db"]
    return f"{base}?{urlencode([*kept, ('db', number)])}"


@pytest.fixture(params=["fakeredis", pytest.param("redis", marks=pytest.mark.integration)])
def redis_client(request: pytest.FixtureRequest) -> Iterator[Redis]:
    """An empty Redis for one test: a private fakeredis, or the real one.

    The real one is the suite's Redis (``SUITE_REDIS_URL``, which honours REDIS_URL) on a
    database of its own, flushed before and after the test.
    """
    if request.param == "fakeredis":
        client: Redis = fakeredis.FakeRedis(server=fakeredis.FakeServer())
        yield client
        client.close()
        return
    client = Redis.from_url(own_database(request.getfixturevalue("redis_url")))
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def ledger(redis_client: Redis) -> Ledger:
    return Ledger(redis_client)


# -- CPU capacity -------------------------------------------------------------------------


def test_half_capacity_fits_two(ledger: Ledger) -> None:
    assert ledger.reserve(M, "a", 0.5) is not None
    assert ledger.reserve(M, "b", 0.5) is not None
    assert ledger.reserve(M, "c", 0.5) is None
    assert ledger.owners(M) == {"a", "b"}
    assert ledger.usage(M).cpu_free == 0


def test_capacity_point_three_fits_three(ledger: Ledger) -> None:
    for owner in "abc":
        assert ledger.reserve(M, owner, 0.3) is not None
    assert ledger.reserve(M, "d", 0.3) is None
    usage = ledger.usage(M)
    assert usage.cpu_used == pytest.approx(0.9)
    assert usage.cpu_free == pytest.approx(0.1)


def test_mixed_projects_share_one_machine(ledger: Ledger) -> None:
    assert ledger.reserve(M, "big", 0.6) is not None
    assert ledger.reserve(M, "half", 0.5) is None
    assert ledger.reserve(M, "small1", 0.2) is not None
    assert ledger.reserve(M, "small2", 0.2) is not None
    assert ledger.reserve(M, "small3", 0.2) is None
    assert ledger.fits(M, 0.2) is False
    assert ledger.usage(M).cpu_used == pytest.approx(1.0)


def test_machines_are_independent(ledger: Ledger) -> None:
    assert ledger.reserve("m1", "a", 1.0) is not None
    assert ledger.reserve("m2", "b", 1.0) is not None
    assert ledger.owners("m1") == {"a"}


# -- GPUs ---------------------------------------------------------------------------------


def test_half_gpus_spread_over_two(ledger: Ledger) -> None:
    gpus = []
    for owner in "abcd":
        lease = ledger.reserve(M, owner, 0.1, gpu_share=0.5, gpu_count=2)
        assert lease is not None
        gpus.append(lease.gpu)
    assert gpus == [0, 1, 0, 1]
    assert ledger.reserve(M, "e", 0.1, gpu_share=0.5, gpu_count=2) is None
    assert ledger.usage(M, gpu_count=2).gpu_used == (1.0, 1.0)


def test_free_gpu_fractions_are_never_summed(ledger: Ledger) -> None:
    assert ledger.reserve(M, "a", 0.1, gpu_share=0.5, gpu_count=2) is not None
    assert ledger.reserve(M, "b", 0.1, gpu_share=0.5, gpu_count=2) is not None
    # 1.0 GPU is free in total, but no single GPU has it.
    assert ledger.fits(M, 0.1, gpu_share=1.0, gpu_count=2) is False
    assert ledger.reserve(M, "c", 0.1, gpu_share=1.0, gpu_count=2) is None
    assert ledger.owners(M) == {"a", "b"}


def test_least_loaded_gpu_wins(ledger: Ledger) -> None:
    assert ledger.reserve(M, "a", 0.1, gpu_share=0.3, gpu_count=3).gpu == 0
    assert ledger.reserve(M, "b", 0.1, gpu_share=0.7, gpu_count=3).gpu == 1
    assert ledger.reserve(M, "c", 0.1, gpu_share=0.5, gpu_count=3).gpu == 2
    # Loads are now 0.3, 0.7, 0.5: 0.3 fits on 0 (least loaded) and 1.
    assert ledger.reserve(M, "d", 0.1, gpu_share=0.3, gpu_count=3).gpu == 0


def test_all_or_nothing_gpu_fits_but_cpu_does_not(ledger: Ledger) -> None:
    assert ledger.reserve(M, "cpu-hog", 0.9) is not None
    assert ledger.reserve(M, "gpu-job", 0.5, gpu_share=0.5, gpu_count=1) is None
    usage = ledger.usage(M, gpu_count=1)
    assert usage.gpu_used == (0.0,)
    assert usage.cpu_used == pytest.approx(0.9)
    assert ledger.owners(M) == {"cpu-hog"}


def test_gpu_share_without_gpus_does_not_fit(ledger: Ledger) -> None:
    assert ledger.reserve(M, "a", 0.1, gpu_share=0.5, gpu_count=0) is None
    assert ledger.fits(M, 0.1, gpu_share=0.5) is False
    assert ledger.owners(M) == set()


def test_cpu_only_lease_takes_no_gpu(ledger: Ledger) -> None:
    lease = ledger.reserve(M, "a", 0.5, gpu_count=2)
    assert lease is not None
    assert lease.gpu is None
    assert lease.gpu_share == 0.0
    assert ledger.usage(M, gpu_count=2).gpu_used == (0.0, 0.0)


# -- release, tokens, idempotency -----------------------------------------------------------


def test_release_frees_capacity(ledger: Ledger) -> None:
    lease = ledger.reserve(M, "a", 1.0, gpu_share=1.0, gpu_count=1)
    assert lease is not None
    assert ledger.reserve(M, "b", 0.5) is None
    assert ledger.release(M, "a", lease.token) is True
    assert ledger.release(M, "a", lease.token) is False
    assert ledger.usage(M, gpu_count=1) == Usage(cpu_used=0.0, gpu_used=(0.0,), leases=())
    assert ledger.reserve(M, "b", 1.0, gpu_share=1.0, gpu_count=1) is not None


def test_release_with_wrong_token_does_nothing(ledger: Ledger) -> None:
    assert ledger.reserve(M, "a", 0.5, token="right") is not None
    assert ledger.release(M, "a", "wrong") is False
    assert ledger.owners(M) == {"a"}
    assert ledger.release(M, "a") is True
    assert ledger.owners(M) == set()


def test_reserve_again_with_same_token_is_idempotent(ledger: Ledger) -> None:
    first = ledger.reserve(M, "a", 0.5, gpu_share=0.5, gpu_count=2, token="t1")
    again = ledger.reserve(M, "a", 0.5, gpu_share=0.5, gpu_count=2, token="t1")
    assert first is not None
    assert again == first
    usage = ledger.usage(M, gpu_count=2)
    assert usage.cpu_used == pytest.approx(0.5)
    assert usage.gpu_used == (0.5, 0.0)


def test_reserve_with_another_token_fails(ledger: Ledger) -> None:
    assert ledger.reserve(M, "a", 0.1, token="t1") is not None
    assert ledger.reserve(M, "a", 0.1, token="t2") is None
    assert ledger.usage(M).leases[0].token == "t1"


def test_generated_tokens_differ(ledger: Ledger) -> None:
    a = ledger.reserve(M, "a", 0.1)
    b = ledger.reserve(M, "b", 0.1)
    assert a is not None and b is not None
    assert a.token != b.token
    assert len(a.token) == 32


def test_confirm(ledger: Ledger) -> None:
    lease = ledger.reserve(M, "a", 0.5)
    assert lease is not None
    assert ledger.confirm(M, "a", lease.token) is True
    assert ledger.confirm(M, "a", "other") is False
    assert ledger.confirm(M, "nobody", lease.token) is False
    ledger.release(M, "a")
    assert ledger.confirm(M, "a", lease.token) is False


def test_keys_lost_by_redis_drop_that_machines_leases_only(
    redis_client: Redis, ledger: Ledger
) -> None:
    ledger.reserve(M, "a", 0.5)
    ledger.reserve(M, "b", 0.5)
    ledger.reserve("other", "c", 0.5)
    redis_client.delete(ledger.lease_key(M), ledger.expiry_key(M))  # Redis lost them
    assert ledger.owners(M) == set()
    assert ledger.owners("other") == {"c"}
    assert ledger.reserve(M, "d", 1.0) is not None


# -- expiry and renewal -------------------------------------------------------------------


def test_unrenewed_lease_expires(redis_client: Redis) -> None:
    ledger = Ledger(redis_client, ttl=0.2)
    assert ledger.reserve(M, "a", 1.0) is not None
    assert wait_for(
        lambda: ledger.usage(M).leases == (), timeout=5, what="the unrenewed lease to expire"
    )
    assert ledger.renew(M, ["a"]) == set()
    assert ledger.confirm(M, "a", "any") is False
    assert ledger.reserve(M, "b", 1.0) is not None


def test_renew_keeps_lease_alive_past_its_ttl(redis_client: Redis) -> None:
    ledger = Ledger(redis_client, ttl=0.4)
    assert ledger.reserve(M, "kept", 0.5) is not None
    assert ledger.reserve(M, "dropped", 0.5) is not None
    start = time.monotonic()

    def dropped_gone() -> bool:
        assert ledger.renew(M, ["kept"]) == {"kept"}
        return "dropped" not in ledger.owners(M)

    assert wait_for(dropped_gone, timeout=5, what="the unrenewed lease to expire")
    # "dropped" lived its ttl; keep renewing "kept" (every poll) a full ttl beyond that.
    assert wait_for(
        lambda: dropped_gone() and time.monotonic() - start > 0.8,
        timeout=5,
        what="a further ttl of renewals of the kept lease",
    )
    assert ledger.renew(M, ["kept", "dropped", "never"]) == {"kept"}
    assert ledger.owners(M) == {"kept"}


def test_renew_nothing(ledger: Ledger) -> None:
    assert ledger.renew(M, []) == set()


# -- storage ------------------------------------------------------------------------------


def test_keys_and_stored_format(redis_client: Redis) -> None:
    ledger = Ledger(redis_client, ttl=30, prefix="t")
    lease = ledger.reserve(M, "exp1", 0.25, gpu_share=0.5, gpu_count=1)
    cpu_only = ledger.reserve(M, "exp2", 0.25)
    assert lease is not None and cpu_only is not None
    stored = json.loads(redis_client.hget(f"t:lease:{M}", "exp1"))
    assert stored == {"token": lease.token, "cpu": 250_000, "gpu": 0, "gpu_share": 500_000}
    stored = json.loads(redis_client.hget(f"t:lease:{M}", "exp2"))
    assert stored == {"token": cpu_only.token, "cpu": 250_000, "gpu": None, "gpu_share": 0}
    seconds, micros = redis_client.time()
    expiry = redis_client.zscore(f"t:lease-exp:{M}", "exp1")
    assert 0 < expiry - (seconds + micros / MICRO) <= 30
    # The keys themselves expire, so a machine that goes away leaves nothing behind.
    assert 0 < redis_client.pttl(f"t:lease:{M}") <= 31_000
    assert 0 < redis_client.pttl(f"t:lease-exp:{M}") <= 31_000


def test_a_shorter_ttl_never_shortens_the_keys_expiry(redis_client: Redis) -> None:
    long_lived = Ledger(redis_client, ttl=300, prefix="t")
    assert long_lived.reserve(M, "slow", 0.25) is not None
    assert Ledger(redis_client, ttl=5, prefix="t").reserve(M, "quick", 0.25) is not None
    for key in (f"t:lease:{M}", f"t:lease-exp:{M}"):
        assert 299_000 < redis_client.pttl(key) <= 301_000


def test_a_key_without_expiry_gets_one(redis_client: Redis) -> None:
    redis_client.zadd(f"t:lease-exp:{M}", {"stale": 1.0})  # written without an expiry
    assert Ledger(redis_client, ttl=30, prefix="t").reserve(M, "a", 0.25) is not None
    assert 0 < redis_client.pttl(f"t:lease-exp:{M}") <= 31_000


def test_lease_without_expiry_is_not_live(redis_client: Redis) -> None:
    ledger = Ledger(redis_client)
    raw = json.dumps({"token": "x", "cpu": MICRO, "gpu": None, "gpu_share": 0})
    redis_client.hset(ledger.lease_key(M), "orphan", raw)
    assert ledger.owners(M) == set()
    assert ledger.reserve(M, "a", 1.0) is not None


# -- bad arguments ------------------------------------------------------------------------


@pytest.mark.parametrize("cpu", [0, -0.1, 1.5, float("nan"), True])
def test_bad_capacity_raises(ledger: Ledger, cpu: float) -> None:
    with pytest.raises(ValueError, match=r"capacity .* is out of range; use a number in \(0, 1\]"):
        ledger.reserve(M, "a", cpu)
    with pytest.raises(ValueError, match=r"capacity .* is out of range"):
        ledger.fits(M, cpu)


def test_bad_capacity_message_quotes_value(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match=r"^capacity 1\.5 is out of range; use a number in"):
        ledger.reserve(M, "a", 1.5)


def test_tiny_capacity_raises(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match=r"capacity 1e-09 is too small"):
        ledger.reserve(M, "a", 1e-9)


@pytest.mark.parametrize("share", [-0.1, 1.5])
def test_bad_gpu_share_raises(ledger: Ledger, share: float) -> None:
    with pytest.raises(ValueError, match=r"gpu_share .* is out of range; use a number in \[0, 1\]"):
        ledger.reserve(M, "a", 0.5, gpu_share=share, gpu_count=1)


def test_bad_gpu_count_raises(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match=r"gpu_count -1 is out of range; use an integer >= 0"):
        ledger.reserve(M, "a", 0.5, gpu_count=-1)
    with pytest.raises(ValueError, match=r"gpu_count -1 is out of range"):
        ledger.usage(M, gpu_count=-1)


def test_bad_names_and_ttl_raise(redis_client: Redis) -> None:
    with pytest.raises(ValueError, match=r"ttl 0 is out of range"):
        Ledger(redis_client, ttl=0)
    ledger = Ledger(redis_client)
    with pytest.raises(ValueError, match=r"machine '' must be a non-empty string"):
        ledger.reserve("", "a", 0.5)
    with pytest.raises(ValueError, match=r"owner '' must be a non-empty string"):
        ledger.reserve(M, "", 0.5)
    with pytest.raises(ValueError, match=r"token '' must be a non-empty string"):
        ledger.reserve(M, "a", 0.5, token="")


def test_busy_gpus_count_as_full(redis_client) -> None:
    ledger = Ledger(redis_client)
    first = ledger.reserve("m", "a", 0.1, gpu_share=0.5, gpu_count=2, busy_gpus=[0])
    second = ledger.reserve("m", "b", 0.1, gpu_share=0.5, gpu_count=2, busy_gpus=[0])
    third = ledger.reserve("m", "c", 0.1, gpu_share=0.5, gpu_count=2, busy_gpus=[0])
    assert first is not None and first.gpu == 1
    assert second is not None and second.gpu == 1
    assert third is None
    assert ledger.reserve("m", "d", 0.1, gpu_share=0.5, gpu_count=2, busy_gpus=[0, 1]) is None
    assert ledger.reserve("m", "e", 0.1, gpu_count=2, busy_gpus=[0, 1]) is not None


def test_restore_writes_back_a_vanished_lease_without_a_fit_check(redis_client) -> None:
    ledger = Ledger(redis_client)
    running = ledger.reserve("m", "a", 0.6, gpu_share=0.5, gpu_count=2)
    assert running is not None
    redis_client.flushdb()
    assert ledger.reserve("m", "b", 0.6, gpu_share=1.0, gpu_count=2) is not None

    ledger.restore(running)

    usage = ledger.usage("m", 2)
    assert usage.cpu_used == pytest.approx(1.2)
    assert ledger.confirm("m", "a", running.token)
    assert {lease.owner: lease.gpu for lease in usage.leases}["a"] == running.gpu


# -- Reading expiries ---------------------------------------------------------------------


def test_expiries_say_when_each_lease_ends_by_redis_time(ledger: Ledger) -> None:
    ledger.reserve(M, "a", 0.5)
    ledger.reserve(M, "b", 0.25)
    seconds, micros = ledger.redis.time()
    now = seconds + micros / 1e6

    expiries = ledger.expiries(M)

    assert set(expiries) == {"a", "b"}
    for expiry in expiries.values():
        assert now < expiry <= now + ledger.ttl
    assert ledger.expiries("other-machine") == {}
    assert ledger.owners(M) == {"a", "b"}  # reading takes and renews nothing


def test_an_expired_lease_is_not_confirmed_before_anything_purges_it(
    redis_client: Redis,
) -> None:
    ledger = Ledger(redis_client, ttl=30, prefix="t")
    lease = ledger.reserve(M, "late", 0.25)
    assert lease is not None
    redis_client.zadd(f"t:lease-exp:{M}", {"late": 1.0})  # its expiry long past
    assert ledger.confirm(M, "late", lease.token) is False


def test_a_confirm_renews_only_a_lease_past_half_its_life(redis_client: Redis) -> None:
    ledger = Ledger(redis_client, ttl=0.6)
    lease = ledger.reserve(M, "a", 0.5)
    assert lease is not None
    reserved = ledger.expiries(M)["a"]

    assert ledger.confirm(M, "a", lease.token) is True
    assert ledger.expiries(M)["a"] == reserved  # right after the reserve: nothing written

    wait_for(lambda: time.time() > reserved - 0.25, 5, "the lease to pass half its life")
    assert ledger.confirm(M, "a", lease.token) is True
    assert ledger.expiries(M)["a"] > reserved
