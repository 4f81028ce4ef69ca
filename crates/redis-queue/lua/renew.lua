-- renew: the owner of running entries resets their idle time, so that no other host takes
-- them while they run. An entry another host took already (this one was silent past its
-- lease) is not taken back: it is returned as lost.
-- KEYS: 1 stream
-- ARGV: 1 group, 2 consumer, 3... entry ids
local group, me = ARGV[1], ARGV[2]
local lost = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local p = redis.pcall('XPENDING', KEYS[1], group, id, id, 1)
  if type(p) == 'table' and not p.err and #p > 0 and p[1][2] == me then
    redis.call('XCLAIM', KEYS[1], group, me, 0, id, 'JUSTID')
  else
    lost[#lost + 1] = id
  end
end
return lost
