-- complete: a host's result for one entry. Accepted only from the entry's current owner, and
-- only once (the entry leaves the stream here): a job stolen after its lease ran out and
-- finished on both hosts is delivered once. A shared job's result goes to each of its callers.
-- KEYS: 1 stream
-- ARGV: 1 key prefix, 2 group, 3 consumer, 4 entry id, 5 job id, 6 status, 7 value
-- Returns 1 when accepted, 0 when dropped.
P = ARGV[1]
local group, me, id = ARGV[2], ARGV[3], ARGV[4]
local p = redis.pcall('XPENDING', KEYS[1], group, id, id, 1)
if type(p) ~= 'table' or p.err or #p == 0 or p[1][2] ~= me then return 0 end
local key = P .. 'job:' .. ARGV[5]
local t = fields(redis.call('HGETALL', key))
redis.call('XACK', KEYS[1], group, id)
redis.call('XDEL', KEYS[1], id)
redis.call('DEL', key)
if t.p and t.l then answer(ARGV[5], t, ARGV[6], ARGV[7], nil) end
if t.q then
  uncount(t)
  -- A slot of a capped range is free: a host asleep may take a job that waited for it.
  if redis.call('ZCARD', P .. 'wait') > 0 then
    redis.call('LPUSH', P .. 'wake', '1')
    redis.call('LTRIM', P .. 'wake', 0, 63)
  end
end
flush_replies()
return 1
