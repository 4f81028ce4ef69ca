-- policy: a producer with prioritySlots keeps the queue's policy from expiring (admit sets it;
-- it lasts a lease after the last producer that holds it). 0 when the queue holds another
-- policy (set by another producer): this one's jobs are refused at admission.
-- KEYS: 1 policy
-- ARGV: 1 the producer's policy, 2 its lease (ms)
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
