-- complete_many: a host's results for many entries in one call (those that finished while its
-- previous call was under way), each as complete.lua does it: accepted only from the entry's
-- current owner, and only once. Each accepted result's run time joins the queue's recent run
-- times, per function and for the whole queue: capped lists, newest first, read by stats and
-- by maxExpectedWait's admission check (gauge.lua).
-- KEYS: 1 stream
-- ARGV: 1 key prefix, 2 group, 3 consumer, 4 run times kept per list, then 5 per result:
--       entry id, job id, status, value, run time (ms; '' when the function did not run)
-- Returns one 1 (accepted) or 0 (dropped) per result.
local prefix, group, me = ARGV[1], ARGV[2], ARGV[3]
local keep = tonumber(ARGV[4])
local out, acked = {}, {}
local ttls = {} -- producer id -> PTTL of its liveness key, read once per call
local runs = {} -- function name -> run times of this call, and '' -> all of them
local all = {}
local function ran(fn, ms)
  local list = runs[fn]
  if not list then
    list = {}
    runs[fn] = list
  end
  list[#list + 1] = ms
  all[#all + 1] = ms
end
for i = 5, #ARGV - 4, 5 do
  local id = ARGV[i]
  local p = redis.pcall('XPENDING', KEYS[1], group, id, id, 1)
  if type(p) ~= 'table' or p.err or #p == 0 or p[1][2] ~= me then
    out[#out + 1] = 0
  else
    local key = prefix .. 'job:' .. ARGV[i + 1]
    local producer, lid, fn = unpack(redis.call('HMGET', key, 'p', 'l', 'f'))
    acked[#acked + 1] = id
    redis.call('DEL', key)
    if producer and lid then
      local ttl = ttls[producer]
      if not ttl then
        ttl = redis.call('PTTL', prefix .. 'producer:' .. producer)
        ttls[producer] = ttl
      end
      if ttl ~= -2 then
        redis.call('XADD', prefix .. 'reply:' .. producer, '*', 'l', lid, 's', ARGV[i + 2], 'v', ARGV[i + 3])
      end
    end
    local ms = tonumber(ARGV[i + 4])
    if ms and ms >= 0 then ran(fn or '', ms) end
    out[#out + 1] = 1
  end
end
if #acked > 0 then
  redis.call('XACK', KEYS[1], group, unpack(acked))
  redis.call('XDEL', KEYS[1], unpack(acked))
end
for producer, ttl in pairs(ttls) do
  if ttl > 0 then redis.call('PEXPIRE', prefix .. 'reply:' .. producer, ttl) end
end
-- Run times, newest first, at most `keep` per list: `runs:<function>` ('runs:' for the default
-- function) and `runs` for the whole queue.
if #all > 0 and keep > 0 then
  for fn, list in pairs(runs) do
    local k = prefix .. 'runs:' .. fn
    redis.call('LPUSH', k, unpack(list))
    redis.call('LTRIM', k, 0, keep - 1)
  end
  redis.call('LPUSH', prefix .. 'runs', unpack(all))
  redis.call('LTRIM', prefix .. 'runs', 0, keep - 1)
  -- The functions that have run times, for stats (a set: as many as the module has).
  local names = {}
  for fn in pairs(runs) do names[#names + 1] = fn end
  redis.call('SADD', prefix .. 'fns', unpack(names))
end
return out
