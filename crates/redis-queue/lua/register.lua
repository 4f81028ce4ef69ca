-- register: a host tells the queue its slots (workers × concurrency), for a lease: the caps of
-- prioritySlots come from the slots of every host whose registration is live (take reads
-- them). Renewed every lease / 4; 0 slots unregisters (a host that stops).
-- KEYS: 1 hosts (hash: consumer -> '<until, Redis ms> <slots>')
-- ARGV: 1 consumer, 2 slots, 3 lease (ms)
-- Returns 1.
if tonumber(ARGV[2]) <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], string.format('%d %d', now + tonumber(ARGV[3]), tonumber(ARGV[2])))
return 1
