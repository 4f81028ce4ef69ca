-- take: a host takes up to n jobs, exactly its free slots. First the entries whose lease ran
-- out (their owner died or stopped answering: idle longer than the lease), then waiting jobs,
-- highest priority first, moved into the stream and read by this consumer in the same script.
-- A waiting job past its queue or total deadline (Redis's clock) is not handed out: it fails
-- for its callers. Under the queue's prioritySlots (the `policy` key), a job whose priority
-- range holds its cap of jobs in flight (counted in `inflight`) stays waiting, and jobs of
-- lower ranges may pass it; the caps come from the slots of the live hosts (`hosts`).
-- The entries idle past the lease are looked for only when the host asks (ARGV 6 = 1: at most
-- once per lease / 4 per host, see Host::take): XAUTOCLAIM scans the group's pending entries,
-- and doing it on every take cost more Redis time than the rest of the call.
-- KEYS: 1 waiting (sorted set), 2 stream, 3 dead-letter stream, 4 wake (list)
-- ARGV: 1 key prefix, 2 group, 3 consumer, 4 n, 5 lease (ms), 6 '1': reclaim entries idle past
--       the lease first
-- Returns { deliveries, failed, dropped, dead }: deliveries flat, 11 per job: entry id, job id,
-- kind, function name, arguments, retries, timeout, delivery count, progress wanted, the
-- priority range it is counted in ('' none), its coalescing mapping ('' none): the host hands
-- the last two back to complete_many, which then need not read the record. `failed`
-- counts jobs failed for their callers (past their retries, or their deadlines).
P = ARGV[1]
local group, me = ARGV[2], ARGV[3]
local n = tonumber(ARGV[4])
local out = {}
local taken, failed, dropped, dead = 0, 0, 0, 0
local now = now_ms()

-- A group command; the group (and the stream) are created when Redis says there is none
-- (the first take of a queue, or after Redis lost its state), not checked on every call.
local function with_group(...)
  local r = redis.pcall(...)
  if type(r) == 'table' and r.err then
    if not string.find(r.err, 'NOGROUP', 1, true) then return redis.error_reply(r.err) end
    redis.pcall('XGROUP', 'CREATE', KEYS[2], group, '0', 'MKSTREAM')
    r = redis.call(...)
  end
  return r
end

local function finish(id, key, t)
  redis.call('XACK', KEYS[2], group, id)
  redis.call('XDEL', KEYS[2], id)
  if key then redis.call('DEL', key) end
  if t then uncount(t) end
end

-- A malformed entry (written by something else) goes to the dead-letter stream, with why.
local function bury(id, flat, reason)
  local args = { KEYS[3], 'MAXLEN', '~', '10000', '*', 'reason', reason, 'entry', id }
  for i = 1, math.min(#flat, 200) do args[#args + 1] = flat[i] end
  redis.call('XADD', unpack(args))
  finish(id, nil, nil)
  dead = dead + 1
end

-- The records of the jobs this call moved into the stream (read there once): job id -> record.
local moved_records = {}

-- The job record an entry names, checked: the record, its key; or nil and the reason.
local function record(flat)
  local job = fields(flat).j
  if type(job) ~= 'string' then return nil, 'not a comrade job entry (no field j)' end
  local key = P .. 'job:' .. job
  local t = moved_records[job] or fields(redis.call('HGETALL', key))
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
  out[o + 9], out[o + 10], out[o + 11] = t.g or '0', t.q or '', t.K or ''
  taken = taken + 1
end

local function past(deadline)
  return deadline and now >= tonumber(deadline)
end

-- 1. Entries idle past the lease: each re-delivery counts as a retry.
local claimed = { '0-0', {} }
if ARGV[6] == '1' then
  claimed = with_group('XAUTOCLAIM', KEYS[2], group, me, ARGV[5], '0-0', 'COUNT', n)
  if claimed.err then return claimed end
end
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
        answer(t.id, t, 'f', cjson.encode({ host = t.o or '', deliveries = count, retries = tonumber(t.r) }), nil)
        finish(id, key, t)
        failed = failed + 1
      elseif past(t.td) then
        answer(t.id, t, 't', '{}', nil)
        finish(id, key, t)
        failed = failed + 1
      elseif t.c or not wanted(t.id, t) then
        -- Cancelled by its callers, or every caller's producer is gone: nobody waits for it.
        unshare(t.id, t)
        finish(id, key, t)
        dropped = dropped + 1
      else
        deliver(id, t, key, count)
      end
    end
  end
end

-- The caps of the priority ranges now, lowest range first: { from, cap, name } (the name
-- counts the range's jobs in `inflight`); nil without a policy. proletariat's rule (as the
-- local scheduler's, crates/core/src/scheduler.rs): the lowest range (from 0, and every
-- negative priority) has the slots the others do not guarantee; a range's cap is its slots
-- and those of every range below it, or with sacred guarantees its own and the lowest
-- range's. The slots are those of every host whose registration is live.
local function caps_now()
  local policy = redis.call('GET', P .. 'policy')
  if not policy then return nil end
  local ranges = {}
  for from, slots in string.gmatch(policy, ';([^:;]+):(%d+)') do
    local f = tonumber(from)
    if f and f > 0 then ranges[#ranges + 1] = { f, tonumber(slots), from } end
  end
  table.sort(ranges, function(a, b) return a[1] < b[1] end)
  local total = 0
  local hosts = redis.call('HGETALL', P .. 'hosts')
  for i = 1, #hosts - 1, 2 do
    local until_ms, slots = string.match(hosts[i + 1], '^(%d+) (%d+)$')
    if until_ms and tonumber(until_ms) > now then
      total = total + tonumber(slots)
    else
      redis.call('HDEL', P .. 'hosts', hosts[i])
    end
  end
  local guaranteed = 0
  for _, r in ipairs(ranges) do guaranteed = guaranteed + r[2] end
  local rest = math.max(0, total - guaranteed)
  local caps = { { 0, rest, '0' } }
  local sum = rest
  for _, r in ipairs(ranges) do
    sum = sum + r[2]
    caps[#caps + 1] = { r[1], string.sub(policy, 1, 1) == '1' and rest + r[2] or sum, r[3] }
  end
  return caps
end

-- 2. Waiting jobs into the stream, then read by this consumer: exactly the free slots.
local want = n - taken
if want > 0 then
  local caps = caps_now()
  local inflight = {}
  if caps then
    for i, c in ipairs(caps) do inflight[i] = tonumber(redis.call('HGET', P .. 'inflight', c[3]) or '0') end
  end
  -- The lowest score (highest priority) still eligible: past a range at its cap, only the
  -- jobs below that range's `from` (scores above -from).
  local lo = '-inf'
  local moved, seen = 0, 0
  while lo and moved < want and seen < want + 1000 do
    local batch = redis.call('ZRANGEBYSCORE', KEYS[1], lo, '+inf', 'WITHSCORES', 'LIMIT', 0, want - moved)
    if #batch == 0 then break end
    local gone = {} -- this batch's members taken out of the waiting set, removed in one call
    for i = 1, #batch, 2 do
      local member = batch[i]
      local r = nil
      if caps then
        local priority = -tonumber(batch[i + 1])
        r = 1
        for k = #caps, 2, -1 do
          if caps[k][1] <= priority then r = k break end
        end
        if inflight[r] >= caps[r][2] then
          lo = r > 1 and '(' .. string.format('%.17g', -caps[r][1]) or nil
          break
        end
      end
      gone[#gone + 1] = member
      seen = seen + 1
      local job = string.sub(member, 17)
      local key = P .. 'job:' .. job
      -- The whole record: a job moved on is read from the stream in this call, and needs it.
      local t = fields(redis.call('HGETALL', key))
      if not t.p then
        dropped = dropped + 1
      elseif past(t.qd) or past(t.td) then
        -- Past a deadline while it waited: it never runs, and fails for its callers.
        if past(t.qd) then
          answer(job, t, 'q', cjson.encode({ waitedMs = now - tonumber(t.w or now) }), nil)
        else
          answer(job, t, 't', '{}', nil)
        end
        redis.call('DEL', key)
        failed = failed + 1
      elseif not wanted(job, t) then
        -- Every caller's producer is gone: nobody waits for the result.
        unshare(job, t)
        redis.call('DEL', key)
        dropped = dropped + 1
      else
        if r then
          inflight[r] = inflight[r] + 1
          redis.call('HINCRBY', P .. 'inflight', caps[r][3], 1)
          redis.call('HSET', key, 'q', caps[r][3])
          t.q = caps[r][3]
        end
        redis.call('XADD', KEYS[2], '*', 'j', job)
        moved_records[job] = t
        moved = moved + 1
      end
    end
    if #gone > 0 then redis.call('ZREM', KEYS[1], unpack(gone)) end
  end
  local read = with_group('XREADGROUP', 'GROUP', group, me, 'COUNT', want, 'STREAMS', KEYS[2], '>')
  if type(read) == 'table' and read.err then
    flush_replies()
    return read
  end
  if read then
    for _, e in ipairs(read[1][2]) do
      local id = e[1]
      local t, key = record(e[2])
      if not t then bury(id, e[2], key) else deliver(id, t, key, 1) end
    end
  end
end

if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('DEL', KEYS[4]) end
flush_replies()
return { out, failed, dropped, dead }
