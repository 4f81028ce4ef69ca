-- shared: functions prepended to the scripts that settle jobs (crates/redis-queue/src/lib.rs
-- joins the texts). `P` is the key prefix; each script sets it first.
local P

-- Redis's clock in ms: the one clock every producer and host agrees on (deadlines are in it).
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- What this call learned of each producer, read once per call (no script here writes a
-- producer's key, and no key expires while a script runs): its key's PTTL, and whether this
-- call set its reply stream's expiry already. A batch's replies mostly go to one producer.
local ttls, expiring = {}, {}

local function producer_ttl(producer)
  local ttl = ttls[producer]
  if not ttl then
    ttl = redis.call('PTTL', P .. 'producer:' .. producer)
    ttls[producer] = ttl
  end
  return ttl
end

-- A result (or failure, or progress report) for a producer's local id, only while the
-- producer lives: its reply stream expires with it. Replies are gathered per producer and
-- written by flush_replies (which every script that replies calls before it returns): one
-- XADD per producer and call, carrying its replies in order as repeated `l`, `s`, `v` fields.
local replies, reply_order = {}, {}
-- Fields per reply entry at most (500 replies): unpack and the entry stay bounded.
local REPLY_FIELDS = 3000

local function reply_to(producer, lid, status, value)
  local ttl = producer_ttl(producer)
  if ttl == -2 then return end
  local fields = replies[producer]
  if not fields then
    fields = {}
    replies[producer] = fields
    reply_order[#reply_order + 1] = producer
  end
  local n = #fields
  fields[n + 1], fields[n + 2], fields[n + 3], fields[n + 4], fields[n + 5], fields[n + 6] =
    'l', lid, 's', status, 'v', value
end

local function flush_replies()
  for _, producer in ipairs(reply_order) do
    local stream = P .. 'reply:' .. producer
    local fields = replies[producer]
    for i = 1, #fields, REPLY_FIELDS do
      redis.call('XADD', stream, '*', unpack(fields, i, math.min(#fields, i + REPLY_FIELDS - 1)))
    end
    -- Later XADDs keep the expiry: once per stream and call.
    local ttl = ttls[producer]
    if ttl > 0 and not expiring[producer] then
      redis.call('PEXPIRE', stream, ttl)
      expiring[producer] = true
    end
  end
  replies, reply_order = {}, {}
end

-- A caller id `<producer>:<local>` split.
local function split(caller)
  return string.match(caller, '^([^:]+):(.*)$')
end

-- The callers of job `id` (record `t`): for a shared job (coalesced by key, `K` set) every
-- caller still in its callers hash, as { caller id, progress wanted }; otherwise its own.
local function callers_of(id, t)
  if not t.K then return { { id, t.g or '0' } } end
  local flat = redis.call('HGETALL', P .. 'callers:' .. id)
  local out = {}
  for i = 1, #flat - 1, 2 do out[#out + 1] = { flat[i], flat[i + 1] } end
  return out
end

-- Some caller of job `id` still waits: its producer lives.
local function wanted(id, t)
  for _, c in ipairs(callers_of(id, t)) do
    local producer = split(c[1])
    if producer and producer_ttl(producer) ~= -2 then return true end
  end
  return false
end

-- A shared job's coalescing state goes: its callers hash, its joiners' records, and its key's
-- mapping while the mapping names it (a job of the same key admitted from here on is new).
local function unshare(id, t)
  if not t.K then return end
  local ckey = P .. 'callers:' .. id
  for _, c in ipairs(callers_of(id, t)) do
    if c[1] ~= id then redis.call('DEL', P .. 'job:' .. c[1]) end
  end
  redis.call('DEL', ckey)
  if redis.call('GET', t.K) == id then redis.call('DEL', t.K) end
end

-- Job `id` settles with `status` and `value` for every caller (all of a shared job's, each on
-- its producer's reply stream, but `except`); its coalescing state goes with it.
local function answer(id, t, status, value, except)
  for _, c in ipairs(callers_of(id, t)) do
    if c[1] ~= except then
      local producer, lid = split(c[1])
      if producer then reply_to(producer, lid, status, value) end
    end
  end
  unshare(id, t)
end

-- A job counted in flight in its priority range (`q`, under prioritySlots) leaves its host.
local function uncount(t)
  if t.q then
    if redis.call('HINCRBY', P .. 'inflight', t.q, -1) <= 0 then redis.call('HDEL', P .. 'inflight', t.q) end
  end
end

local function fields(flat)
  local t = {}
  for i = 1, #flat - 1, 2 do t[flat[i]] = flat[i + 1] end
  return t
end
