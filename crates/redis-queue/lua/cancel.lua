-- cancel: a producer withdraws jobs it no longer wants (their AbortSignal fired). A job still
-- waiting leaves the queue with its record; a job delivered to a host is flagged (`c`): its host
-- finds the flag when it renews the job's lease, and aborts it there.
-- KEYS: 1 waiting (sorted set)
-- ARGV: 1 key prefix, 2 producer id, 3... local ids
-- Returns { withdrawn, flagged }.
local prefix, producer = ARGV[1], ARGV[2]
local withdrawn, flagged = 0, 0
for i = 3, #ARGV do
  local key = prefix .. 'job:' .. producer .. ':' .. ARGV[i]
  local owner, member = unpack(redis.call('HMGET', key, 'o', 'm'))
  if member then
    if owner then
      redis.call('HSET', key, 'c', '1')
      flagged = flagged + 1
    else
      redis.call('ZREM', KEYS[1], member)
      redis.call('DEL', key)
      withdrawn = withdrawn + 1
    end
  end
end
return { withdrawn, flagged }
