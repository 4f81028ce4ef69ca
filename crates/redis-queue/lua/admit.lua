-- admit: one producer's batch of jobs enters the queue, atomically.
-- KEYS: 1 waiting (sorted set), 2 wake (list), 3 sequence (counter)
-- ARGV: 1 key prefix, 2 producer id, 3 backlog limit (most jobs waiting in the whole queue;
--       -1: none), 4 the producer's priority policy ('' = none: see below), 5 its lease (ms),
--       6 '1' when this batch is sent again (its first sending's reply was lost), then 11 per
--       job:
--       local id, kind ('r' run / 'x' exec), function name ('' = default), arguments (JSON),
--       retries, timeout (ms, 0 = none), score (-priority: lower is taken first), progress
--       wanted ('1' or '0'), queue timeout (ms, 0 = none), total timeout (ms, 0 = none),
--       coalescing key ('' = none)
-- Returns { admitted, refused local ids, jobs waiting, joined local ids, conflicting policy }.
-- A job whose record exists already is skipped: a batch sent again (its first reply was lost
-- with the connection) queues nothing twice. Only a batch sent again is checked (a local id is
-- never in two batches), so a first sending costs no EXISTS per job. A job that would make the queue's waiting jobs
-- more than the limit is refused: the limit holds across every producer, since the count and
-- the admission are one step.
-- Deadlines are in Redis's clock: `qd` (queue) and `td` (total) in the record; take hands
-- out no job past one.
-- A job with a key joins the job of the same function and key waiting or running anywhere
-- (`key:<len>:<name>:<key>` names it): it gets a record `s = <that job>` and joins its callers
-- hash (`callers:<job>`, caller id -> progress wanted), which the job's result fans out to. A
-- job with a key and none to join becomes that shared job (`K` its mapping's key).
-- The policy (`prioritySlots` and `sacredGuarantees`, as `<sacred 0|1>;<from>:<slots>;...`)
-- is the queue's (`policy`, kept while producers that hold it live): one that differs from
-- the queue's refuses the whole batch, returning the queue's.
P = ARGV[1]
local producer = ARGV[2]
local limit = tonumber(ARGV[3])
local policy = ARGV[4]
local again = ARGV[6] == '1'
if policy ~= '' then
  local current = redis.call('GET', P .. 'policy')
  if current and current ~= policy then return { 0, {}, redis.call('ZCARD', KEYS[1]), {}, current } end
  redis.call('SET', P .. 'policy', policy, 'PX', ARGV[5])
end
local waiting = redis.call('ZCARD', KEYS[1])
local now = now_ms()
local n = 0
local refused, joined = {}, {}
-- Sequence numbers are reserved for the rest of the batch in one INCRBY when one is first
-- needed (numbers a skipped job leaves unused only order nothing).
local seq, reserved = 0, 0
-- The members to add to the waiting set, in one ZADD: score, member, ...
local adds = {}
for i = 7, #ARGV - 10, 11 do
  local lid = ARGV[i]
  local id = producer .. ':' .. lid
  local key = P .. 'job:' .. id
  local name, progress, shared = ARGV[i + 2], ARGV[i + 7], ARGV[i + 10]
  local map, carrier = nil, nil
  if shared ~= '' then
    map = P .. 'key:' .. #name .. ':' .. name .. ':' .. shared
    carrier = redis.call('GET', map)
    if carrier then
      local c = redis.call('HMGET', P .. 'job:' .. carrier, 'K', 'c')
      -- Only a shared job still under way, not cancelled, is joined (a stale mapping is not).
      if c[1] ~= map or c[2] then carrier = nil end
    end
  end
  if again and redis.call('EXISTS', key) == 1 then
    -- Admitted by the first sending of this batch.
  elseif carrier then
    redis.call('HSET', key, 'p', producer, 'l', lid, 's', carrier)
    redis.call('HSET', P .. 'callers:' .. carrier, id, progress)
    joined[#joined + 1] = lid
  elseif limit >= 0 and waiting >= limit then
    refused[#refused + 1] = lid
  else
    waiting = waiting + 1
    if seq >= reserved then
      local rest = math.floor((#ARGV - i) / 11) + 1
      reserved = redis.call('INCRBY', KEYS[3], rest)
      seq = reserved - rest
    end
    seq = seq + 1
    -- Equal scores are ordered by member: the zero-padded sequence keeps them first in, first out.
    local member = string.format('%016d', seq) .. id
    local record = { 'p', producer, 'l', lid, 'k', ARGV[i + 1], 'f', name, 'a', ARGV[i + 3],
      'r', ARGV[i + 4], 't', ARGV[i + 5], 'm', member, 'g', progress, 'w', now }
    local qto, tto = tonumber(ARGV[i + 8]), tonumber(ARGV[i + 9])
    if qto > 0 then record[#record + 1] = 'qd'; record[#record + 1] = now + qto end
    if map then
      -- A shared job: every caller has its own total deadline (at its producer); the host
      -- sends its progress reports, which go to the callers that asked.
      record[#record + 1] = 'K'; record[#record + 1] = map
      record[18] = '1'
      redis.call('SET', map, id)
      redis.call('HSET', P .. 'callers:' .. id, id, progress)
    elseif tto > 0 then
      record[#record + 1] = 'td'; record[#record + 1] = now + tto
    end
    redis.call('HSET', key, unpack(record))
    adds[#adds + 1] = ARGV[i + 6]
    adds[#adds + 1] = member
    n = n + 1
  end
end
if n > 0 then
  redis.call('ZADD', KEYS[1], unpack(adds))
  -- One token per job (at most 64) wakes as many sleeping hosts; the list never grows past 64.
  local tokens = {}
  for i = 1, math.min(n, 64) do tokens[i] = '1' end
  redis.call('LPUSH', KEYS[2], unpack(tokens))
  redis.call('LTRIM', KEYS[2], 0, 63)
end
return { n, refused, waiting, joined, '' }
