-- cancel: a producer withdraws jobs it no longer wants (their AbortSignal fired, their total
-- timeout passed: mode 'c'), or jobs still waiting past their queue timeout (mode 'q').
-- Mode 'c': a job still waiting leaves the queue with its record; a job delivered to a host is
-- flagged (`c`): its host finds the flag when it renews the job's lease, and aborts it there.
-- A caller of a shared job (coalesced by key) leaves it alone; the shared job is withdrawn or
-- flagged only once every caller has gone.
-- Mode 'q': a job still waiting leaves the queue; a shared one fails with 'q' for its other
-- callers. A job delivered already, or a caller that joined a shared job, is left alone.
-- KEYS: 1 waiting (sorted set)
-- ARGV: 1 key prefix, 2 producer id, 3 mode ('c' or 'q'), 4... local ids
-- Returns { withdrawn, flagged, statuses }: per local id, 'w' (withdrawn: it never ran),
-- 'r:<host>' (delivered to that host; flagged in mode 'c'), 'j' (left a shared job, which goes
-- on), '' (no such job: settled already, its reply on its way).
P = ARGV[1]
local producer, mode = ARGV[2], ARGV[3]
local withdrawn, flagged = 0, 0
local statuses = {}

-- Withdraws (waiting) or flags (delivered) job `id`, record `t`: its status.
local function stop(id, t, key)
  if t.o then
    if mode == 'c' then
      redis.call('HSET', key, 'c', '1')
      flagged = flagged + 1
    end
    return 'r:' .. t.o
  end
  redis.call('ZREM', KEYS[1], t.m)
  redis.call('DEL', key)
  withdrawn = withdrawn + 1
  return 'w'
end

for i = 4, #ARGV do
  local id = producer .. ':' .. ARGV[i]
  local key = P .. 'job:' .. id
  local t = fields(redis.call('HGETALL', key))
  local status = ''
  if t.s then
    -- A caller that joined a shared job.
    if mode == 'c' then
      local callers = P .. 'callers:' .. t.s
      redis.call('HDEL', callers, id)
      redis.call('DEL', key)
      status = 'j'
      if redis.call('HLEN', callers) == 0 then
        local ckey = P .. 'job:' .. t.s
        local c = fields(redis.call('HGETALL', ckey))
        if c.p then
          unshare(t.s, c)
          stop(t.s, c, ckey)
        end
      end
    else
      status = 'r:'
    end
  elseif t.K and t.m then
    -- The caller that started a shared job.
    if mode == 'q' then
      if t.o then
        status = 'r:' .. t.o
      else
        answer(id, t, 'q', cjson.encode({ waitedMs = now_ms() - tonumber(t.w or 0) }), id)
        status = stop(id, t, key)
      end
    else
      local callers = P .. 'callers:' .. id
      redis.call('HDEL', callers, id)
      if redis.call('HLEN', callers) == 0 then
        unshare(id, t)
        status = stop(id, t, key)
      else
        status = 'j'
      end
    end
  elseif t.m then
    status = stop(id, t, key)
  end
  statuses[#statuses + 1] = status
end
flush_replies()
return { withdrawn, flagged, statuses }
