-- Reads popularity windows of article shards: each window's materialised union of its active buckets,
-- rebuilt here when it has expired (so it never lives without its TTL). On a cluster one call reads the
-- shards of one slot; on a single server, every shard at once.
--
-- KEYS: per shard, per window asked: the aggregate, then the window's active buckets when they are sent
--   (the global set stands alone); then, for 'scores', each article's clicks hash.
-- ARGV: ttl_ms, mode, n_windows, per window the number of its bucket keys sent (-1: the global set;
--   0: none sent, so the answer is 'rebuild' when an aggregate has expired: call again with them), n_shards, then
--   mode 'scores': per shard, its number of articles and their ids. Answers per article, in order:
--     the score in each window, then its clicks hash's s and t ('' when absent).
--   mode 'top': k. Answers per shard, per window: member, score, ... (its top k, highest first).

local ttl_ms, mode = ARGV[1], ARGV[2]
local n_windows = tonumber(ARGV[3])
local sizes = {}
for w = 1, n_windows do
    sizes[w] = tonumber(ARGV[3 + w])
end
local n_shards = tonumber(ARGV[4 + n_windows])
local cursor = 4 + n_windows

local function aggregate(k, n)
    if n <= 0 then
        return KEYS[k]
    end
    if redis.call('EXISTS', KEYS[k]) == 0 then
        redis.call('ZUNIONSTORE', KEYS[k], n, unpack(KEYS, k + 1, k + n))
        redis.call('PEXPIRE', KEYS[k], ttl_ms)
    end
    return KEYS[k]
end

-- Without the buckets, first check that every aggregate is there (the usual case: they live ttl_ms).
local k = 1
for s = 1, n_shards do
    for w = 1, n_windows do
        if sizes[w] == 0 and redis.call('EXISTS', KEYS[k]) == 0 then
            return 'rebuild'
        end
        k = k + 1 + math.max(sizes[w], 0)
    end
end

local answers = {}
k = 1
local clicks = 0
for s = 1, n_shards do
    local windows = {}
    for w = 1, n_windows do
        windows[w] = aggregate(k, sizes[w])
        k = k + 1 + math.max(sizes[w], 0)
    end
    if mode == 'scores' then
        cursor = cursor + 1
        local n_ids = tonumber(ARGV[cursor])
        local ids = { unpack(ARGV, cursor + 1, cursor + n_ids) }
        cursor = cursor + n_ids
        local scores = {}
        for w = 1, n_windows do
            scores[w] = redis.call('ZMSCORE', windows[w], unpack(ids))
        end
        for i = 1, n_ids do
            for w = 1, n_windows do
                table.insert(answers, scores[w][i] or '')
            end
        end
        clicks = clicks + n_ids
    else
        local top = tonumber(ARGV[cursor + 1]) - 1
        local per_window = {}
        for w = 1, n_windows do
            per_window[w] = redis.call('ZREVRANGE', windows[w], 0, top, 'WITHSCORES')
        end
        table.insert(answers, per_window)
    end
end
if mode == 'scores' then
    -- The clicks hashes follow the shards' keys, in the order of the ids.
    local scored = {}
    for i = 1, clicks do
        local fields = redis.call('HMGET', KEYS[k + i - 1], 's', 't')
        scored[i] = { fields[1] or '', fields[2] or '' }
    end
    local out, a = {}, 1
    for i = 1, clicks do
        for w = 1, n_windows do
            table.insert(out, answers[a])
            a = a + 1
        end
        table.insert(out, scored[i][1])
        table.insert(out, scored[i][2])
    end
    return out
end
return answers
