-- cycle: a host's wave in one call (Host::cycle): the results of the jobs it finished, as
-- complete_many.lua writes them, then the next jobs for its free slots (those included), as
-- take.lua takes them. One script call and one round trip per wave instead of two. The text
-- before this is shared.lua, then complete_many.lua as `complete_part` and take.lua as
-- `take_part` (crates/redis-queue/src/lib.rs joins them), each with its own KEYS and ARGV.
-- KEYS: 1 waiting (sorted set), 2 stream, 3 dead-letter stream, 4 wake (list)
-- ARGV: 1 key prefix, 2 group, 3 consumer, 4 n, 5 lease (ms), 6 '1': reclaim first (take's),
--       7 run times kept per list, then 9 per result (complete_many's)
-- Returns { complete_many's answer, take's answer, '' or the take's error }: results written
-- stay written when the take fails.
local done_argv = { ARGV[1], ARGV[2], ARGV[3], ARGV[7] }
for i = 8, #ARGV do done_argv[#done_argv + 1] = ARGV[i] end
local done = complete_part({ KEYS[2] }, done_argv)
local took = take_part({ KEYS[1], KEYS[2], KEYS[3], KEYS[4] },
  { ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6] })
if took.err then return { done, { {}, 0, 0, 0 }, took.err } end
return { done, took, '' }
