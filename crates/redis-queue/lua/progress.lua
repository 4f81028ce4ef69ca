-- progress: a running job's progress report, for its producer (which asked for it). Only
-- from the entry's current owner, and only while the producer lives; written to the reply
-- stream before the job's result (a host sends its reports before it completes the job).
-- KEYS: 1 stream
-- ARGV: 1 key prefix, 2 group, 3 consumer, 4 entry id, 5 job id, 6 value (JSON)
-- Returns 1 when written, 0 when dropped.
local prefix, group, me, id = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local p = redis.pcall('XPENDING', KEYS[1], group, id, id, 1)
if type(p) ~= 'table' or p.err or #p == 0 or p[1][2] ~= me then return 0 end
local producer, lid = unpack(redis.call('HMGET', prefix .. 'job:' .. ARGV[5], 'p', 'l'))
if not producer or not lid then return 0 end
local ttl = redis.call('PTTL', prefix .. 'producer:' .. producer)
if ttl == -2 then return 0 end
local stream = prefix .. 'reply:' .. producer
redis.call('XADD', stream, '*', 'l', lid, 's', 'p', 'v', ARGV[6])
if ttl > 0 then redis.call('PEXPIRE', stream, ttl) end
return 1
