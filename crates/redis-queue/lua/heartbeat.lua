-- heartbeat: a producer keeps its liveness key and its reply stream from expiring. 0 when
-- the key is gone or not its own (Redis lost its state, or the producer was silent past its
-- lease): its jobs are lost.
-- KEYS: 1 the producer's liveness key, 2 its reply stream
-- ARGV: 1 the producer's token, 2 ttl (ms)
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
