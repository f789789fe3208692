"""The doorbell's Redis side: its scripts and its figures (:mod:`coder_ring.celery.doorbell`)."""

from __future__ import annotations

import hashlib

#: Ring queues a worker's ``BRPOP`` names besides its doorbell: those that served last,
#: so a request on a busy ring is taken in one round trip.
RECENT_QUEUES = 8
#: Rung queues one pop tries at most, and doorbell names it takes.
POP_QUEUES = 64
DOORBELL_NAMES = 100
#: How often a worker looks for requests nobody rang, and at how many ring queues at
#: most (the next ones the next time: the event loop spends the same on it at any size).
SWEEP_SECONDS = 0.25
SWEEP_KEYS = 1000
#: A sweep waits this many times as long as the last one took before the next, at most
#: this long (a sweep stuck through a cut must not stop the sweeps for minutes after).
SWEEP_SHARE = 10
SWEEP_MAX_WAIT = 2.0
#: After a reply Redis refused for a moment (BUSY, UNBLOCKED, READONLY...), the worker
#: sends nothing for this long, then tries again.
PAUSE_SECONDS = 0.25
#: A doorbell outlives its last ring this long (a dead worker's is then gone), and holds
#: this many names at most (a worker that stopped looking: the sweep finds the rest).
DOORBELL_TTL_MS = 60_000
DOORBELL_LENGTH = 10_000

# KEYS[1]: a ring's queue, KEYS[2]: the ring's lock. ARGV[1]: the message, ARGV[2]: the
# prefix of a member's doorbell, ARGV[3]: its TTL (ms), ARGV[4]: its names at most.
PUBLISH = """
redis.call('lpush', KEYS[1], ARGV[1])
local holder = redis.call('get', KEYS[2])
if holder then
  local bell = ARGV[2] .. holder
  if redis.call('llen', bell) < tonumber(ARGV[4]) then redis.call('lpush', bell, KEYS[1]) end
  redis.call('pexpire', bell, ARGV[3])
end
return 1
"""
# KEYS[1..n-1]: queues to pop from, in order; KEYS[n]: the doorbell. ARGV[1]: names to
# take off the doorbell. Returns {index of the queue popped or 0, message, names}.
POP = """
local names = redis.call('rpop', KEYS[#KEYS], ARGV[1]) or {}
for index = 1, #KEYS - 1 do
  local message = redis.call('rpop', KEYS[index])
  if message then return {index, message, names} end
end
return {0, '', names}
"""
#: Scripts go by their digest (EVALSHA): the ACL rules grant no EVAL (README, Redis ACL).
POP_SHA = hashlib.sha1(POP.encode()).hexdigest()
# KEYS: ring queues. Returns the indexes of those holding a request (idle: one EXISTS).
SWEEP = """
if redis.call('exists', unpack(KEYS)) == 0 then return {} end
local found = {}
for index = 1, #KEYS do
  if redis.call('exists', KEYS[index]) == 1 then found[#found + 1] = index end
end
return found
"""
