-- gauge: what maxExpectedWait's estimate needs, read at once: the jobs waiting, the live
-- hosts and their slots, and the mean of the queue's most recent run times.
-- KEYS: 1 waiting (sorted set), 2 hosts (hash, see register.lua), 3 run times (list, newest
--       first, see complete_many.lua)
-- ARGV: 1 run times the mean covers (the newest ones)
-- Returns { waiting, live hosts, their slots, mean run time (ms, as text), run times kept }.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local waiting = redis.call('ZCARD', KEYS[1])
local hosts, slots = 0, 0
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all - 1, 2 do
  local until_ms, s = string.match(all[i + 1], '^(%d+) (%d+)$')
  if s and tonumber(until_ms) >= now then
    hosts = hosts + 1
    slots = slots + tonumber(s)
  end
end
local recent = redis.call('LRANGE', KEYS[3], 0, tonumber(ARGV[1]) - 1)
local sum = 0
for _, v in ipairs(recent) do sum = sum + (tonumber(v) or 0) end
local mean = #recent > 0 and sum / #recent or 0
return { waiting, hosts, slots, string.format('%.3f', mean), redis.call('LLEN', KEYS[3]) }
