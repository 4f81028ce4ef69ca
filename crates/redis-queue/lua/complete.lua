-- complete: a host's result for one entry. Accepted only from the entry's current owner, and
-- only once (the entry leaves the stream here): a job stolen after its lease ran out and
-- finished on both hosts is delivered once.
-- KEYS: 1 stream
-- ARGV: 1 key prefix, 2 group, 3 consumer, 4 entry id, 5 job id, 6 status, 7 value
-- Returns 1 when accepted, 0 when dropped.
local prefix, group, me, id = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local p = redis.pcall('XPENDING', KEYS[1], group, id, id, 1)
if type(p) ~= 'table' or p.err or #p == 0 or p[1][2] ~= me then return 0 end
local key = prefix .. 'job:' .. ARGV[5]
local producer = redis.call('HGET', key, 'p')
local lid = redis.call('HGET', key, 'l')
redis.call('XACK', KEYS[1], group, id)
redis.call('XDEL', KEYS[1], id)
redis.call('DEL', key)
if producer and lid then
  local ttl = redis.call('PTTL', prefix .. 'producer:' .. producer)
  if ttl ~= -2 then
    local stream = prefix .. 'reply:' .. producer
    redis.call('XADD', stream, '*', 'l', lid, 's', ARGV[6], 'v', ARGV[7])
    if ttl > 0 then redis.call('PEXPIRE', stream, ttl) end
  end
end
return 1
