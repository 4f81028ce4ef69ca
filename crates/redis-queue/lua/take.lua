-- take: a host takes up to n jobs, exactly its free slots. First the entries whose lease ran
-- out (their owner died or stopped answering: idle longer than the lease), then waiting jobs,
-- highest priority first, moved into the stream and read by this consumer in the same script.
-- KEYS: 1 waiting (sorted set), 2 stream, 3 dead-letter stream, 4 wake (list)
-- ARGV: 1 key prefix, 2 group, 3 consumer, 4 n, 5 lease (ms)
-- Returns { deliveries, failed, dropped, dead }: deliveries flat, 9 per job: entry id, job id,
-- kind, function name, arguments, retries, timeout, delivery count, progress wanted.
local prefix, group, me = ARGV[1], ARGV[2], ARGV[3]
local n = tonumber(ARGV[4])
local out = {}
local taken, failed, dropped, dead = 0, 0, 0, 0

-- The group exists once: an error (BUSYGROUP) is the usual case and means nothing.
redis.pcall('XGROUP', 'CREATE', KEYS[2], group, '0', 'MKSTREAM')

local function fields(flat)
  local t = {}
  for i = 1, #flat - 1, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

local function alive(producer)
  return redis.call('EXISTS', prefix .. 'producer:' .. producer) == 1
end

-- A result (or failure) for the producer, only while it lives: its reply stream expires with it.
local function reply(producer, lid, status, value)
  local ttl = redis.call('PTTL', prefix .. 'producer:' .. producer)
  if ttl == -2 then return end
  local stream = prefix .. 'reply:' .. producer
  redis.call('XADD', stream, '*', 'l', lid, 's', status, 'v', value)
  if ttl > 0 then redis.call('PEXPIRE', stream, ttl) end
end

local function finish(id, key)
  redis.call('XACK', KEYS[2], group, id)
  redis.call('XDEL', KEYS[2], id)
  if key then redis.call('DEL', key) end
end

-- A malformed entry (written by something else) goes to the dead-letter stream, with why.
local function bury(id, flat, reason)
  local args = { KEYS[3], 'MAXLEN', '~', '10000', '*', 'reason', reason, 'entry', id }
  for i = 1, math.min(#flat, 200) do args[#args + 1] = flat[i] end
  redis.call('XADD', unpack(args))
  finish(id, nil)
  dead = dead + 1
end

-- The job record an entry names, checked: the record, its key; or nil and the reason.
local function record(flat)
  local job = fields(flat).j
  if type(job) ~= 'string' then return nil, 'not a comrade job entry (no field j)' end
  local key = prefix .. 'job:' .. job
  local t = fields(redis.call('HGETALL', key))
  if not t.p then return nil, 'no job record ' .. key end
  if not (t.l and t.a and t.f and (t.k == 'r' or t.k == 'x') and tonumber(t.r) and tonumber(t.t)) then
    return nil, 'malformed job record ' .. key
  end
  t.id = job
  return t, key
end

local function deliver(id, t, key, count)
  redis.call('HSET', key, 'o', me)
  local o = #out
  out[o + 1], out[o + 2], out[o + 3], out[o + 4] = id, t.id, t.k, t.f
  out[o + 5], out[o + 6], out[o + 7], out[o + 8] = t.a, t.r, t.t, tostring(count)
  out[o + 9] = t.g or '0'
  taken = taken + 1
end

-- 1. Entries idle past the lease: each re-delivery counts as a retry.
local claimed = redis.call('XAUTOCLAIM', KEYS[2], group, me, ARGV[5], '0-0', 'COUNT', n)
for _, e in ipairs(claimed[2]) do
  if type(e) == 'table' and type(e[2]) == 'table' then
    local id = e[1]
    local t, key = record(e[2])
    if not t then
      bury(id, e[2], key)
    else
      local p = redis.call('XPENDING', KEYS[2], group, id, id, 1)
      local count = (p[1] and p[1][4]) or 1
      if t.o == me and count > 1 then
        -- Its own entry, idle past the lease because this host renewed late: not a
        -- re-delivery. The counter is set back (the host skips a job it still runs).
        count = count - 1
        redis.call('XCLAIM', KEYS[2], group, me, 0, id, 'RETRYCOUNT', count, 'JUSTID')
      end
      if count > tonumber(t.r) + 1 then
        reply(t.p, t.l, 'f', cjson.encode({ host = t.o or '', deliveries = count, retries = tonumber(t.r) }))
        finish(id, key)
        failed = failed + 1
      elseif t.c or not alive(t.p) then
        -- Cancelled by its producer, or its producer is gone: nobody waits for it.
        finish(id, key)
        dropped = dropped + 1
      else
        deliver(id, t, key, count)
      end
    end
  end
end

-- 2. Waiting jobs into the stream, then read by this consumer: exactly the free slots.
local want = n - taken
if want > 0 then
  local moved, seen = 0, 0
  while moved < want and seen < want + 1000 do
    local popped = redis.call('ZPOPMIN', KEYS[1], want - moved)
    if #popped == 0 then break end
    for i = 1, #popped, 2 do
      local job = string.sub(popped[i], 17)
      local key = prefix .. 'job:' .. job
      local producer = redis.call('HGET', key, 'p')
      if producer and alive(producer) then
        redis.call('XADD', KEYS[2], '*', 'j', job)
        moved = moved + 1
      else
        -- Its producer is gone: nobody waits for the result.
        redis.call('DEL', key)
        dropped = dropped + 1
      end
      seen = seen + 1
    end
  end
  local read = redis.call('XREADGROUP', 'GROUP', group, me, 'COUNT', want, 'STREAMS', KEYS[2], '>')
  if read then
    for _, e in ipairs(read[1][2]) do
      local id = e[1]
      local t, key = record(e[2])
      if not t then bury(id, e[2], key) else deliver(id, t, key, 1) end
    end
  end
end

if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('DEL', KEYS[4]) end
return { out, failed, dropped, dead }
