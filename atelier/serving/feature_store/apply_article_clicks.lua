-- Applies clicks to their articles' keys: the catalogue check, each article's decayed click score, the
-- popularity buckets and the global set of the article's shard. On a cluster one call holds the clicks on
-- the articles of one shard (one slot); on a single server, a whole batch.
--
-- KEYS: per event (keys.py builds them): its shard's global set, the article's catalogue hash, its clicks
--   hash, the event's marker for the shard, then one bucket per window (of the event's time).
-- ARGV: now_ms ("0": the server's clock), dedupe_ttl_ms, item_ttl_ms, decay_rate (per second),
--   global_epoch_s, global_max_items (this shard's cap), n_windows,
--   then per event: event_id, article_id, event_ms, and per window when its bucket expires (unix s).
-- Returns per event two values: 1 applied, 0 duplicate (already applied to this shard: nothing changed)
-- or 2 article not in the catalogue (nothing changed); and the article's category ('' without one),
-- which the user's script needs (a duplicate's too: the user's part may still be missing).

local now_ms = server_ms(ARGV[1])
local dedupe_ttl_ms = tonumber(ARGV[2])
local item_ttl_ms = tonumber(ARGV[3])
local decay_rate = tonumber(ARGV[4])
local global_epoch_s = tonumber(ARGV[5])
local global_max_items = tonumber(ARGV[6])
local n_windows = tonumber(ARGV[7])
local ARGS_PER_EVENT = 3 + n_windows
local KEYS_PER_EVENT = 4 + n_windows

local events, problem = read_events(7, ARGS_PER_EVENT, KEYS_PER_EVENT)
if not events then
    return problem
end

-- Phase 1: read and validate, no writes.
for index, event in ipairs(events) do
    local a, k = event.a, event.k
    event.global, event.metadata, event.clicks, event.marker = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]
    event.buckets = {}
    -- The catalogue's hash is only read: a click on an article without one is not applied (the
    -- features service refuses those, but accepts clicks unchecked while Redis is down).
    local known = redis.call('TYPE', event.metadata).ok == 'hash'
    event.category = known and (redis.call('HGET', event.metadata, 'category') or '') or ''
    event.duplicate = known and applied_before(event.marker)
    event.unknown = not known
    if not event.duplicate and not event.unknown then
        for w = 1, n_windows do
            local expires_at_s = tonumber(ARGV[a + 3 + w])
            if expires_at_s * 1000 > now_ms then
                table.insert(event.buckets, { key = KEYS[k + 4 + w], expires_at_s = expires_at_s })
            end
        end
        local problem = wrong_type(event.clicks, 'hash')
            or wrong_type(event.global, 'zset')
            or load_numbers(event.clicks, 's', 't')
        for _, bucket in ipairs(event.buckets) do
            problem = problem or wrong_type(bucket.key, 'zset')
        end
        if problem then
            return fail(index, event.id, problem)
        end
    end
end

-- Phase 2: write. Only commands that cannot fail on keys of the checked types.
local answers = {}
local trimmed, to_trim = {}, {}
for index, event in ipairs(events) do
    local status = 1
    if event.duplicate then
        status = 0
    elseif event.unknown then
        status = 2
    else
        if not trimmed[event.global] then
            trimmed[event.global] = true
            table.insert(to_trim, event.global)
        end
        redis.call('SET', event.marker, '1', 'PX', dedupe_ttl_ms)
        accumulate(event.clicks, 's', 't', event.ms, decay_rate)
        expire_later(event.clicks, 'PEXPIRE', item_ttl_ms)
        for _, bucket in ipairs(event.buckets) do
            redis.call('ZINCRBY', bucket.key, 1, event.item)
            expire_later(bucket.key, 'EXPIREAT', fmt(bucket.expires_at_s))
        end
        local increment = math.exp(decay_rate * (event.ms / 1000 - global_epoch_s))
        redis.call('ZINCRBY', event.global, fmt(increment), event.item)
    end
    answers[2 * index - 1] = status
    answers[2 * index] = event.category
end
apply_expiries()

-- Once per call and global set: the call is atomic, so trimming after it is as good as after each event.
for _, name in ipairs(to_trim) do
    redis.call('ZREMRANGEBYRANK', name, 0, -global_max_items - 1)
end
return answers
