"""The Redis ledger of each machine's CPU capacity and GPU slots, held as leases.

Capacity is never a counter that can leak. Each reservation is a lease owned by an
experiment ID, with an expiry that the running worker renews by heartbeat; a lease that is
not renewed disappears by itself. Capacity in use is the sum of the live leases, computed
inside Lua each time, and every script first purges the expired ones. Time comes from
Redis ``TIME``, so client clocks never matter.

Keys, for prefix ``fglab`` and machine ``m``:

- ``fglab:lease:m``: a hash, owner -> JSON ``{"token", "cpu", "gpu", "gpu_share"}`` with
  ``cpu`` and ``gpu_share`` in integer micro-units and ``gpu`` an index or ``null``;
- ``fglab:lease-exp:m``: a sorted set, owner -> expiry in seconds (from ``TIME``).

Both keys also carry a Redis expiry a little past their newest lease, so a machine that
goes away leaves nothing behind.

The fitting rule (:func:`fit_cpu`, :func:`fit_gpu`) is pure Python for tests and for
reading; the Lua in :data:`_RESERVE` mirrors it and is what decides.
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from redis import Redis

logger = logging.getLogger(__name__)

#: One whole CPU (a machine's capacity) or one whole GPU, in micro-units.
MICRO = 1_000_000


def to_micro(value: float) -> int:
    """A fraction of a CPU or GPU in integer micro-units, rounded down.

    Rounding down (with a margin for float error) keeps the promise that ``floor(1/c)``
    experiments of capacity ``c`` fit: rounding to nearest would turn 1/6 into 166667,
    and six of those overflow one machine.
    """
    return math.floor(value * MICRO + 1e-6)


def fit_cpu(used: int, cpu: int) -> bool:
    """Whether ``cpu`` more micro-units fit on a machine that has ``used`` taken."""
    return used + cpu <= MICRO


def fit_gpu(used: Sequence[int], share: int) -> int | None:
    """The GPU index a ``share`` (micro-units) goes to, or None when no single GPU has room.

    ``used`` is the micro-units taken on each GPU. A share must fit on one GPU; free
    fractions are never summed across GPUs. Among GPUs with room the least loaded wins,
    the lowest index on ties, so work spreads: four shares of 0.5 on two GPUs go to
    0, 1, 0, 1.
    """
    best: int | None = None
    for index, taken in enumerate(used):
        if taken + share <= MICRO and (best is None or taken < used[best]):
            best = index
    return best


@dataclass(frozen=True)
class Lease:
    """One live reservation: ``owner`` (experiment ID) holds ``cpu`` and maybe a GPU share.

    ``token`` proves the reservation: a worker launches only if the lease with its token
    is still there. ``gpu`` is the GPU index, None for CPU-only work.
    """

    owner: str
    machine: str
    token: str
    cpu: float
    gpu: int | None = None
    gpu_share: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "machine": self.machine,
            "token": self.token,
            "cpu": self.cpu,
            "gpu": self.gpu,
            "gpu_share": self.gpu_share,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Lease:
        gpu = data.get("gpu")
        return cls(
            owner=str(data["owner"]),
            machine=str(data["machine"]),
            token=str(data["token"]),
            cpu=float(data["cpu"]),
            gpu=None if gpu is None else int(gpu),
            gpu_share=float(data.get("gpu_share") or 0.0),
        )

    @classmethod
    def _from_stored(cls, machine: str, owner: str, raw: str | bytes) -> Lease:
        """Build from the hash value, whose numbers are micro-units."""
        data = json.loads(raw)
        gpu = data.get("gpu")
        return cls(
            owner=owner,
            machine=machine,
            token=str(data["token"]),
            cpu=int(data["cpu"]) / MICRO,
            gpu=None if gpu is None else int(gpu),
            gpu_share=int(data.get("gpu_share") or 0) / MICRO,
        )


@dataclass(frozen=True)
class Usage:
    """A machine's live leases and what they take, read in one script."""

    cpu_used: float
    gpu_used: tuple[float, ...]
    leases: tuple[Lease, ...]

    @property
    def cpu_free(self) -> float:
        return max(0, MICRO - to_micro(self.cpu_used)) / MICRO


# Shared by every script. KEYS[1] is the lease hash, KEYS[2] the expiry zset.
_PRELUDE = """
local lease_key, exp_key = KEYS[1], KEYS[2]

local function fmt(x) return string.format('%.6f', x) end

local function now_s()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local function purge(now)
  local dead = redis.call('ZRANGEBYSCORE', exp_key, '-inf', fmt(now))
  for _, owner in ipairs(dead) do redis.call('HDEL', lease_key, owner) end
  if #dead > 0 then redis.call('ZREMRANGEBYSCORE', exp_key, '-inf', fmt(now)) end
end

-- Live leases as owner -> {raw, decoded}; a hash entry without an expiry is dropped,
-- since nothing would ever renew or expire it. Called after purge, so every owner left
-- in the expiry set is live: one ZRANGE, not a ZSCORE per lease.
local function live()
  local out, expiring = {}, {}
  for _, owner in ipairs(redis.call('ZRANGE', exp_key, 0, -1)) do expiring[owner] = true end
  local flat = redis.call('HGETALL', lease_key)
  for i = 1, #flat, 2 do
    local owner, raw = flat[i], flat[i + 1]
    if expiring[owner] then
      out[owner] = {raw = raw, lease = cjson.decode(raw)}
    else
      redis.call('HDEL', lease_key, owner)
    end
  end
  return out
end

-- Keep both keys alive a little past their newest lease, never shortening them: another
-- ledger with a longer ttl may have written a lease that outlives ours.
-- GT extends an expiry and never shortens it: one command a key on the common path; only
-- a key without an expiry yet (GT treats it as infinite) needs the PTTL and a plain one.
local function keep(ttl)
  local ms = math.ceil(ttl * 1000) + 1000
  for _, k in ipairs({lease_key, exp_key}) do
    if redis.call('PEXPIRE', k, ms, 'GT') == 0 and redis.call('PTTL', k) == -1 then
      redis.call('PEXPIRE', k, ms)
    end
  end
end
"""

# ARGV: owner, token, cpu (micro), gpu_share (micro), gpu_count, ttl (s), busy GPU indices...
# (busy GPUs are held by processes outside the fleet and count as full).
# Returns {'ok', stored JSON} or {reason} with reason 'owned', 'cpu' or 'gpu'.
_RESERVE = (
    _PRELUDE
    + """
local owner, token = ARGV[1], ARGV[2]
local cpu, share = tonumber(ARGV[3]), tonumber(ARGV[4])
local ngpu, ttl = tonumber(ARGV[5]), tonumber(ARGV[6])
local now = now_s()
purge(now)
local leases = live()

local mine = leases[owner]
if mine then
  if mine.lease.token ~= token then return {'owned'} end
  redis.call('ZADD', exp_key, fmt(now + ttl), owner)
  keep(ttl)
  return {'ok', mine.raw}
end

local cpu_used, gpu_used = 0, {}
for i = 1, ngpu do gpu_used[i] = 0 end
for i = 7, #ARGV do
  local busy = tonumber(ARGV[i])
  if busy >= 0 and busy < ngpu then gpu_used[busy + 1] = @MICRO@ end
end
for _, l in pairs(leases) do
  cpu_used = cpu_used + tonumber(l.lease.cpu)
  local g = l.lease.gpu
  if g ~= nil and g ~= cjson.null and g >= 0 and g < ngpu then
    gpu_used[g + 1] = gpu_used[g + 1] + tonumber(l.lease.gpu_share or 0)
  end
end
if cpu_used + cpu > @MICRO@ then return {'cpu'} end

-- Mirrors fit_gpu: one GPU must hold the whole share; least loaded, lowest index on ties.
local gpu = cjson.null
if share > 0 then
  local best = nil
  for i = 1, ngpu do
    if gpu_used[i] + share <= @MICRO@ and (best == nil or gpu_used[i] < gpu_used[best]) then
      best = i
    end
  end
  if best == nil then return {'gpu'} end
  gpu = best - 1
end

local raw = cjson.encode({token = token, cpu = cpu, gpu = gpu, gpu_share = share})
redis.call('HSET', lease_key, owner, raw)
redis.call('ZADD', exp_key, fmt(now + ttl), owner)
keep(ttl)
return {'ok', raw}
"""
).replace("@MICRO@", str(MICRO))

# ARGV: ttl (s), owners... Returns the owners that were live (and are now renewed).
_RENEW = (
    _PRELUDE
    + """
local ttl = tonumber(ARGV[1])
local now = now_s()
purge(now)
local kept = {}
for i = 2, #ARGV do
  local owner = ARGV[i]
  if redis.call('HEXISTS', lease_key, owner) == 1 and redis.call('ZSCORE', exp_key, owner) then
    redis.call('ZADD', exp_key, fmt(now + ttl), owner)
    kept[#kept + 1] = owner
  end
end
if #kept > 0 then keep(ttl) end
return kept
"""
)

# ARGV: owner, token, ttl (s). Returns 1 when that lease is live (renewing it when less
# than half its ttl is left), else 0.
_CONFIRM = (
    _PRELUDE
    + """
local owner, token, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local now = now_s()
-- No purge: only this lease matters, and its own expiry says whether it is live.
local raw = redis.call('HGET', lease_key, owner)
local expiry = redis.call('ZSCORE', exp_key, owner)
if not raw or not expiry or tonumber(expiry) <= now then return 0 end
if cjson.decode(raw).token ~= token then return 0 end
-- Renewed only when past half its life: a confirm right after the reserve (the common
-- case) needs no writes; the heartbeat renews it from then on.
if tonumber(expiry) - now > ttl / 2 then return 1 end
redis.call('ZADD', exp_key, fmt(now + ttl), owner)
keep(ttl)
return 1
"""
)

# ARGV: owner, token ('' for any). Returns 1 when the lease was there and is removed, else 0.
_RELEASE = (
    _PRELUDE
    + """
local owner, token = ARGV[1], ARGV[2]
-- No purge: removing one lease needs no clock; expired ones go at the next reserve.
local raw = redis.call('HGET', lease_key, owner)
if not raw then return 0 end
if token ~= '' and cjson.decode(raw).token ~= token then return 0 end
redis.call('HDEL', lease_key, owner)
return redis.call('ZREM', exp_key, owner)
"""
)

# ARGV: owner, stored JSON, ttl (s). Writes the lease as it is, without a fit check.
_RESTORE = (
    _PRELUDE
    + """
local owner, raw, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local now = now_s()
purge(now)
redis.call('HSET', lease_key, owner, raw)
redis.call('ZADD', exp_key, fmt(now + ttl), owner)
keep(ttl)
return 1
"""
)

# No ARGV. Returns the live leases as a flat list: owner, stored JSON, owner, ...
_USAGE = (
    _PRELUDE
    + """
purge(now_s())
local out = {}
for owner, l in pairs(live()) do
  out[#out + 1] = owner
  out[#out + 1] = l.raw
end
return out
"""
)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _fraction(name: str, value: float, *, allow_zero: bool) -> int:
    """Check a CPU or GPU fraction and return it in micro-units; ValueError names it."""
    interval = "[0, 1]" if allow_zero else "(0, 1]"
    ok = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and (0 <= value <= 1 if allow_zero else 0 < value <= 1)
    )
    if not ok:
        raise ValueError(f"{name} {value!r} is out of range; use a number in {interval}")
    micro = to_micro(value)
    if value > 0 and micro == 0:
        raise ValueError(f"{name} {value!r} is too small; use at least {1 / MICRO}")
    return micro


def _gpu_count(value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"gpu_count {value!r} is out of range; use an integer >= 0")
    return value


def _name(kind: str, value: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{kind} {value!r} must be a non-empty string")
    return value


class Ledger:
    """Reserve, renew and release a machine's capacity and GPU slots in Redis.

    Each operation is one Lua script, so a check and its take are atomic across every
    scheduler and worker talking to the same Redis. ``ttl`` is how long a lease lives
    without renewal, in seconds.
    """

    def __init__(self, redis: Redis, ttl: float = 30.0, prefix: str = "fglab") -> None:
        if not isinstance(ttl, int | float) or isinstance(ttl, bool) or not ttl > 0:
            raise ValueError(f"ttl {ttl!r} is out of range; use a number of seconds > 0")
        self.redis = redis
        self.ttl = float(ttl)
        self.prefix = prefix
        self._reserve = redis.register_script(_RESERVE)
        self._renew = redis.register_script(_RENEW)
        self._confirm = redis.register_script(_CONFIRM)
        self._release = redis.register_script(_RELEASE)
        self._usage = redis.register_script(_USAGE)
        self._restore = redis.register_script(_RESTORE)

    def lease_key(self, machine: str) -> str:
        """The hash of a machine's leases: owner -> JSON."""
        return f"{self.prefix}:lease:{machine}"

    def expiry_key(self, machine: str) -> str:
        """The sorted set of a machine's lease expiries: owner -> seconds."""
        return f"{self.prefix}:lease-exp:{machine}"

    def _keys(self, machine: str) -> list[str]:
        _name("machine", machine)
        return [self.lease_key(machine), self.expiry_key(machine)]

    def reserve(
        self,
        machine: str,
        owner: str,
        cpu: float,
        *,
        gpu_share: float = 0.0,
        gpu_count: int = 0,
        token: str | None = None,
        busy_gpus: Iterable[int] = (),
    ) -> Lease | None:
        """Take ``cpu`` and, when ``gpu_share`` > 0, a share of one GPU, all or nothing.

        ``busy_gpus`` are indices whose memory processes outside the fleet hold: they
        count as full, so no share goes there.

        Returns the lease, or None when it does not fit (including a GPU share on a
        machine with no GPUs) or ``owner`` already holds a lease here under another
        token. Asking again with the same token returns the existing lease, renewed, so
        a retried dispatch takes nothing twice. ``token`` defaults to a new uuid4 hex.
        Raises ValueError for out-of-range numbers.
        """
        keys = self._keys(machine)
        _name("owner", owner)
        cpu_m = _fraction("capacity", cpu, allow_zero=False)
        share_m = _fraction("gpu_share", gpu_share, allow_zero=True)
        count = _gpu_count(gpu_count)
        token = _name("token", uuid.uuid4().hex if token is None else token)
        if share_m > 0 and count == 0:
            logger.debug(
                "no room for %s on %s: gpu share asked, machine has no GPUs", owner, machine
            )
            return None
        busy = [int(index) for index in busy_gpus]
        reply = self._reserve(
            keys=keys, args=[owner, token, cpu_m, share_m, count, repr(self.ttl), *busy]
        )
        status = _text(reply[0])
        if status != "ok":
            logger.debug("no room for %s on %s: %s", owner, machine, status)
            return None
        return Lease._from_stored(machine, owner, reply[1])

    def fits(self, machine: str, cpu: float, *, gpu_share: float = 0.0, gpu_count: int = 0) -> bool:
        """Whether a reservation would fit now; takes nothing (the answer may go stale)."""
        cpu_m = _fraction("capacity", cpu, allow_zero=False)
        share_m = _fraction("gpu_share", gpu_share, allow_zero=True)
        count = _gpu_count(gpu_count)
        usage = self.usage(machine, count)
        if not fit_cpu(to_micro(usage.cpu_used), cpu_m):
            return False
        if share_m == 0:
            return True
        return fit_gpu([to_micro(g) for g in usage.gpu_used], share_m) is not None

    def confirm(self, machine: str, owner: str, token: str) -> bool:
        """Whether ``owner`` holds a live lease with ``token``; renews it when it is past
        half its life (a confirm right after the reserve writes nothing)."""
        keys = self._keys(machine)
        return bool(self._confirm(keys=keys, args=[owner, token, repr(self.ttl)]))

    def renew(self, machine: str, owners: Iterable[str]) -> set[str]:
        """Extend the leases of ``owners`` to now + ttl; returns those that were live.

        An owner missing from the result has lost its reservation (it expired or was
        released), and its experiment must not count on the capacity any more.
        """
        keys = self._keys(machine)
        wanted = sorted(set(owners))
        if not wanted:
            return set()
        reply = self._renew(keys=keys, args=[repr(self.ttl), *wanted])
        return {_text(owner) for owner in reply}

    def release(self, machine: str, owner: str, token: str | None = None) -> bool:
        """Remove ``owner``'s lease (only if ``token`` matches, when given).

        Returns True if the lease was there (an expired one not yet purged counts) and is
        now removed; releasing twice is harmless.
        """
        keys = self._keys(machine)
        return bool(self._release(keys=keys, args=[owner, token or ""]))

    def restore(self, lease: Lease) -> None:
        """Write back a lease that vanished (Redis emptied) while its program still runs.

        No fit check: the program holds its CPU share and its GPU whatever the ledger
        says, so the ledger must show it, even if that briefly overfills the machine.
        """
        stored = json.dumps(
            {
                "token": _name("token", lease.token),
                "cpu": _fraction("capacity", lease.cpu, allow_zero=False),
                "gpu": lease.gpu,
                "gpu_share": _fraction("gpu_share", lease.gpu_share, allow_zero=True),
            }
        )
        keys = self._keys(lease.machine)
        self._restore(keys=keys, args=[_name("owner", lease.owner), stored, repr(self.ttl)])

    def usage(self, machine: str, gpu_count: int = 0) -> Usage:
        """The live leases of a machine and what they take; purges expired ones first.

        ``gpu_used`` has one entry per GPU in ``range(gpu_count)``; a lease on a GPU
        index beyond that (the machine lost a GPU) counts for CPU only.
        """
        keys = self._keys(machine)
        count = _gpu_count(gpu_count)
        flat = self._usage(keys=keys, args=[])
        leases = sorted(
            (
                Lease._from_stored(machine, _text(flat[i]), flat[i + 1])
                for i in range(0, len(flat), 2)
            ),
            key=lambda lease: lease.owner,
        )
        cpu = sum(to_micro(lease.cpu) for lease in leases)
        gpus = [0] * count
        for lease in leases:
            if lease.gpu is not None and 0 <= lease.gpu < count:
                gpus[lease.gpu] += to_micro(lease.gpu_share)
        return Usage(
            cpu_used=cpu / MICRO,
            gpu_used=tuple(g / MICRO for g in gpus),
            leases=tuple(leases),
        )

    def expiries(self, machine: str) -> dict[str, float]:
        """When each lease of ``machine`` expires, in seconds since the epoch by Redis'
        clock (``TIME``). Read only: an entry may already be past, until a script purges it.
        """
        raw = self.redis.zrange(self.expiry_key(_name("machine", machine)), 0, -1, withscores=True)
        return {_text(owner): float(score) for owner, score in raw}

    def owners(self, machine: str) -> set[str]:
        """The owners holding a live lease on ``machine``."""
        return {lease.owner for lease in self.usage(machine).leases}
