-- broadcast_check: whether a broadcast is over: every host it was sent to answered, or is no
-- longer live (its lease ran out: it is not waited for, and not counted). When it is, the
-- record is deleted and the answers returned.
-- KEYS: 1 the broadcast's record, 2 the hosts' set
-- ARGV: 1 ttl (ms) of the record while it waits
-- Returns {0} while a live host has not answered, {1, answer...} once over ({1} alone when
-- the record is gone: it expired, so its hosts' answers are lost).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local fields = redis.call('HGETALL', KEYS[1])
local answers = {1}
for i = 1, #fields, 2 do
  local host, v = fields[i], fields[i + 1]
  if v == '' then
    local lease = redis.call('ZSCORE', KEYS[2], host)
    if lease and tonumber(lease) >= now then
      redis.call('PEXPIRE', KEYS[1], ARGV[1])
      return {0}
    end
  else
    answers[#answers + 1] = v
  end
end
redis.call('DEL', KEYS[1])
return answers
