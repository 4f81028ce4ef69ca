-- host_beat: a worker host's one registration per beat (at start and every lease / 4): it is
-- live (broadcasts wait for the live hosts only) and its slots count (the caps of
-- prioritySlots and maxExpectedWait's estimate come from the slots of the live hosts), both
-- until its lease runs out. Expired hosts leave the live set here.
-- KEYS: 1 the live hosts (sorted set: host -> its lease's end, Redis ms), 2 the hosts' slots
--       (hash: host -> '<until, Redis ms> <slots>')
-- ARGV: 1 the host (its consumer name), 2 lease (ms), 3 its slots (0: not counted), 4 '1':
--       live for broadcasts, '0': leaving (it stopped on purpose and finishes its jobs; only
--       its slots stay registered)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ms = now + tonumber(ARGV[2])
if ARGV[4] == '1' then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
  redis.call('ZADD', KEYS[1], until_ms, ARGV[1])
end
if tonumber(ARGV[3]) > 0 then
  redis.call('HSET', KEYS[2], ARGV[1], string.format('%d %d', until_ms, tonumber(ARGV[3])))
else
  redis.call('HDEL', KEYS[2], ARGV[1])
end
return 1
