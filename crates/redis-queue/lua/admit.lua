-- admit: one producer's batch of jobs enters the queue, atomically.
-- KEYS: 1 waiting (sorted set), 2 wake (list), 3 sequence (counter)
-- ARGV: 1 key prefix, 2 producer id, 3 backlog limit (most jobs waiting in the whole queue;
--       -1: none), then 8 per job:
--       local id, kind ('r' run / 'x' exec), function name ('' = default), arguments (JSON),
--       retries, timeout (ms, 0 = none), score (-priority: lower is taken first), progress
--       wanted ('1' or '0')
-- Returns { admitted, refused local ids, jobs waiting }. A job whose record exists already is
-- skipped: a batch sent again (its first reply was lost with the connection) queues nothing
-- twice. A job that would make the queue's waiting jobs more than the limit is refused: the
-- limit holds across every producer, since the count and the admission are one step.
local prefix, producer = ARGV[1], ARGV[2]
local limit = tonumber(ARGV[3])
local waiting = redis.call('ZCARD', KEYS[1])
local n = 0
local refused = {}
for i = 4, #ARGV - 7, 8 do
  local id = producer .. ':' .. ARGV[i]
  local key = prefix .. 'job:' .. id
  if redis.call('EXISTS', key) == 1 then
    -- Admitted by the first sending of this batch.
  elseif limit >= 0 and waiting >= limit then
    refused[#refused + 1] = ARGV[i]
  else
    waiting = waiting + 1
    local seq = redis.call('INCR', KEYS[3])
    -- Equal scores are ordered by member: the zero-padded sequence keeps them first in, first out.
    local member = string.format('%016d', seq) .. id
    redis.call('HSET', key, 'p', producer, 'l', ARGV[i], 'k', ARGV[i + 1],
      'f', ARGV[i + 2], 'a', ARGV[i + 3], 'r', ARGV[i + 4], 't', ARGV[i + 5], 'm', member,
      'g', ARGV[i + 7])
    redis.call('ZADD', KEYS[1], ARGV[i + 6], member)
    n = n + 1
  end
end
if n > 0 then
  -- One token per job (at most 64) wakes as many sleeping hosts; the list never grows past 64.
  local tokens = {}
  for i = 1, math.min(n, 64) do tokens[i] = '1' end
  redis.call('LPUSH', KEYS[2], unpack(tokens))
  redis.call('LTRIM', KEYS[2], 0, 63)
end
return { n, refused, waiting }
