-- host_beat: a host says it is alive and how many jobs it runs at once (its slots), every
-- lease / 4; maxExpectedWait's estimate divides the queue's work by the live hosts' slots.
-- KEYS: 1 hosts (hash: consumer -> "<slots> <ms it is live until>")
-- ARGV: 1 consumer, 2 slots (0: the host leaves), 3 lease (ms)
-- Returns 1. Entries of hosts silent past their lease are removed here too.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(ARGV[2]) > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. (now + tonumber(ARGV[3])))
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all - 1, 2 do
  local until_ms = tonumber(string.match(all[i + 1], ' (%d+)$'))
  if not until_ms or until_ms < now then redis.call('HDEL', KEYS[1], all[i]) end
end
return 1
