-- complete_many: a host's results for many entries in one call (those that finished while its
-- previous call was under way), each as complete.lua does it: accepted only from the entry's
-- current owner, and only once; a shared job's result goes to each of its callers; a job
-- counted in its priority range is uncounted. Each accepted result's run time joins the
-- queue's recent run times, per function and for the whole queue: capped lists, newest first,
-- read by stats and by maxExpectedWait's admission check (gauge.lua).
-- KEYS: 1 stream
-- ARGV: 1 key prefix, 2 group, 3 consumer, 4 run times kept per list, then 9 per result:
--       entry id, job id, status, value, run time (ms; '' when the function did not run),
--       '1' when the host knows the record's settling fields from its take (they are fixed
--       once a job is delivered), then those: function name, priority range (`q`, '' none),
--       coalescing mapping (`K`, '' none); with '0' the record is read for them instead.
-- Returns one 1 (accepted) or 0 (dropped) per result.
P = ARGV[1]
local group, me = ARGV[2], ARGV[3]
local keep = tonumber(ARGV[4])
local out, acked = {}, {}
-- The records of the jobs settled here, deleted in one DEL at the end; a job named twice in the
-- batch settles once (its record read as gone the second time, as if deleted already).
local settled, gone = {}, {}
local runs = {} -- function name -> run times of this call
local all = {}
local freed = false
-- The entries pending for this consumer, in one XPENDING over the range of the batch's ids
-- (this consumer's only): id -> true. An id it does not list is asked alone, as before, so the
-- answer holds whatever the range missed.
local mine = {}
do
  local lo, hi, lo_ms, lo_seq, hi_ms, hi_seq
  for i = 5, #ARGV - 8, 9 do
    local ms, seq = string.match(ARGV[i], '^(%d+)%-(%d+)$')
    if ms then
      ms, seq = tonumber(ms), tonumber(seq)
      if not lo or ms < lo_ms or (ms == lo_ms and seq < lo_seq) then lo, lo_ms, lo_seq = ARGV[i], ms, seq end
      if not hi or ms > hi_ms or (ms == hi_ms and seq > hi_seq) then hi, hi_ms, hi_seq = ARGV[i], ms, seq end
    end
  end
  if lo then
    local p = redis.pcall('XPENDING', KEYS[1], group, lo, hi, 1000, me)
    if type(p) == 'table' and not p.err then
      for _, e in ipairs(p) do mine[e[1]] = true end
    end
  end
end
local function pending_here(id)
  if mine[id] then return true end
  local p = redis.pcall('XPENDING', KEYS[1], group, id, id, 1)
  return type(p) == 'table' and not p.err and #p > 0 and p[1][2] == me
end
for i = 5, #ARGV - 8, 9 do
  local id = ARGV[i]
  if not pending_here(id) then
    out[#out + 1] = 0
  else
    local job = ARGV[i + 1]
    local key = P .. 'job:' .. job
    -- The fields settling needs, not the arguments (which may be large).
    local t = {}
    if settled[job] then
      -- Settled earlier in this batch: as if its record were gone.
    elseif ARGV[i + 5] == '1' then
      -- The entry is this host's, so its record exists (only a job never delivered loses its
      -- record to a cancel); the job id is `<producer>:<local>`.
      local producer, lid = split(job)
      t = { p = producer, l = lid, f = ARGV[i + 6] }
      if ARGV[i + 7] ~= '' then t.q = ARGV[i + 7] end
      if ARGV[i + 8] ~= '' then t.K = ARGV[i + 8] end
      settled[job] = true
      gone[#gone + 1] = key
    else
      local v = redis.call('HMGET', key, 'p', 'l', 'K', 'g', 'q', 'f')
      t = { p = v[1] or nil, l = v[2] or nil, K = v[3] or nil, g = v[4] or nil, q = v[5] or nil,
        f = v[6] or nil }
      settled[job] = true
      gone[#gone + 1] = key
    end
    acked[#acked + 1] = id
    if t.p and t.l then answer(job, t, ARGV[i + 2], ARGV[i + 3], nil) end
    if t.q then
      uncount(t)
      freed = true
    end
    local ms = tonumber(ARGV[i + 4])
    if ms and ms >= 0 then
      local fn = t.f or ''
      runs[fn] = runs[fn] or {}
      table.insert(runs[fn], ms)
      all[#all + 1] = ms
    end
    out[#out + 1] = 1
  end
end
if #gone > 0 then redis.call('DEL', unpack(gone)) end
if #acked > 0 then
  redis.call('XACK', KEYS[1], group, unpack(acked))
  redis.call('XDEL', KEYS[1], unpack(acked))
end
-- A slot of a capped range is free: a host asleep may take a job that waited for it.
if freed and redis.call('ZCARD', P .. 'wait') > 0 then
  redis.call('LPUSH', P .. 'wake', '1')
  redis.call('LTRIM', P .. 'wake', 0, 63)
end
-- Run times, newest first, at most `keep` per list: `runs:<function>` ('runs:' for the default
-- function) and `runs` for the whole queue.
if #all > 0 and keep > 0 then
  local names = {}
  for fn, list in pairs(runs) do
    local k = P .. 'runs:' .. fn
    redis.call('LPUSH', k, unpack(list))
    redis.call('LTRIM', k, 0, keep - 1)
    names[#names + 1] = fn
  end
  redis.call('LPUSH', P .. 'runs', unpack(all))
  redis.call('LTRIM', P .. 'runs', 0, keep - 1)
  -- The functions that have run times, for stats (a set: as many as the module has).
  redis.call('SADD', P .. 'fns', unpack(names))
end
flush_replies()
return out
