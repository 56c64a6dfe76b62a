-- Reads one shard's popularity window: its materialised union of the window's active buckets,
-- rebuilt here when it has expired (so it never lives without its TTL).
--
-- KEYS: the aggregate, then the window's active buckets (newest first).
-- ARGV: ttl_ms, then 'scores' and article ids (answers ZMSCORE) or 'top' and k (answers
--   ZREVRANGE 0 k-1 WITHSCORES).

local aggregate = KEYS[1]
if redis.call('EXISTS', aggregate) == 0 and #KEYS > 1 then
    redis.call('ZUNIONSTORE', aggregate, #KEYS - 1, unpack(KEYS, 2))
    redis.call('PEXPIRE', aggregate, ARGV[1])
end
if ARGV[2] == 'scores' then
    return redis.call('ZMSCORE', aggregate, unpack(ARGV, 3))
end
return redis.call('ZREVRANGE', aggregate, 0, tonumber(ARGV[3]) - 1, 'WITHSCORES')
