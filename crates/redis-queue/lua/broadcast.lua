-- broadcast: a producer's message to every live worker host. Each host whose lease has not
-- run out gets it in its inbox, and the broadcast's record lists those hosts, each pending
-- ("") until its ack. A host started later is not in the record: it never gets it.
-- KEYS: 1 the hosts' set, 2 the broadcast's record
-- ARGV: 1 key prefix, 2 producer id, 3 broadcast id, 4 the message (JSON), 5 ttl (ms) of the
--       record and of the inboxes
-- Returns the number of hosts it was sent to.
local prefix, producer, id, message, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
local hosts = redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')
redis.call('DEL', KEYS[2])
for _, host in ipairs(hosts) do
  local inbox = prefix .. 'inbox:' .. host
  redis.call('RPUSH', inbox, producer .. ' ' .. id .. ' ' .. message)
  -- A host that dies leaves its inbox behind: it expires.
  redis.call('PEXPIRE', inbox, ttl)
  redis.call('HSET', KEYS[2], host, '')
end
if #hosts > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return #hosts
