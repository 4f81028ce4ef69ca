-- renew: the owner of running entries resets their idle time, so that no other host takes
-- them while they run. An entry another host took already (this one was silent past its
-- lease) is not taken back: it is returned as lost. A job its producer cancelled is returned
-- as cancelled (its lease is still renewed: the host completes it once it stopped).
-- KEYS: 1 stream
-- ARGV: 1 key prefix, 2 group, 3 consumer, then pairs: entry id, job id
-- Returns { lost entry ids, cancelled entry ids }.
local prefix, group, me = ARGV[1], ARGV[2], ARGV[3]
local lost, cancelled = {}, {}
for i = 4, #ARGV - 1, 2 do
  local id = ARGV[i]
  local p = redis.pcall('XPENDING', KEYS[1], group, id, id, 1)
  if type(p) == 'table' and not p.err and #p > 0 and p[1][2] == me then
    redis.call('XCLAIM', KEYS[1], group, me, 0, id, 'JUSTID')
    if redis.call('HGET', prefix .. 'job:' .. ARGV[i + 1], 'c') then
      cancelled[#cancelled + 1] = id
    end
  else
    lost[#lost + 1] = id
  end
end
return { lost, cancelled }
