-- progress: a running job's progress report, for its producer (which asked for it), or for
-- each caller of a shared job that asked. Only from the entry's current owner, and only while
-- the producer lives; written to the reply stream before the job's result (a host sends its
-- reports before it completes the job).
-- KEYS: 1 stream
-- ARGV: 1 key prefix, 2 group, 3 consumer, 4 entry id, 5 job id, 6 value (JSON)
-- Returns 1 when written, 0 when dropped.
P = ARGV[1]
local group, me, id = ARGV[2], ARGV[3], ARGV[4]
local p = redis.pcall('XPENDING', KEYS[1], group, id, id, 1)
if type(p) ~= 'table' or p.err or #p == 0 or p[1][2] ~= me then return 0 end
local t = fields(redis.call('HGETALL', P .. 'job:' .. ARGV[5]))
if not t.p or not t.l then return 0 end
local sent = 0
for _, c in ipairs(callers_of(ARGV[5], t)) do
  local producer, lid = split(c[1])
  if producer and c[2] == '1' and producer_ttl(producer) ~= -2 then
    reply_to(producer, lid, 'p', ARGV[6])
    sent = 1
  end
end
flush_replies()
return sent
