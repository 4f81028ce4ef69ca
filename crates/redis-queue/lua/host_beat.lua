-- host_beat: a worker host says it is live (broadcasts wait for the live hosts only). Its
-- score in the hosts' set is the time its lease runs out; expired hosts are removed here.
-- KEYS: 1 the hosts' set
-- ARGV: 1 the host (its consumer name), 2 lease (ms)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 1
