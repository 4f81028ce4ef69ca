-- broadcast_ack: a host's answer to a broadcast, once its local workers acknowledged it:
-- `result` is JSON {"reached":n,"failures":[...]}. Taken only while the broadcast waits for
-- this host (its record exists and lists it as pending); the producer is nudged through its
-- reply stream (status `b`, local id the broadcast's id) while it lives.
-- KEYS: 1 the broadcast's record
-- ARGV: 1 key prefix, 2 producer id, 3 broadcast id, 4 host, 5 result
-- Returns 1 when taken, 0 otherwise.
local prefix, producer, id, host = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('HGET', KEYS[1], host) ~= '' then return 0 end
redis.call('HSET', KEYS[1], host, ARGV[5])
local ttl = redis.call('PTTL', prefix .. 'producer:' .. producer)
if ttl ~= -2 then
  local stream = prefix .. 'reply:' .. producer
  redis.call('XADD', stream, '*', 'l', id, 's', 'b', 'v', '')
  if ttl > 0 then redis.call('PEXPIRE', stream, ttl) end
end
return 1
