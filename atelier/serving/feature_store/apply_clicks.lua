#!lua
-- Applies a batch of click events to the online feature store in one atomic step.
--
-- Standalone Redis/Valkey (primary with replicas) only, never Redis Cluster. The keys
-- are built here from the events instead of being declared in KEYS, and one batch
-- touches keys of many users, items, sessions and popularity buckets: they hash to
-- different slots, so a cluster would refuse the script (CROSSSLOT / non-local key)
-- even if every key were declared. Sharding would need one script call per slot and
-- would lose the batch's atomicity.
--
-- Redis does not roll back a script's writes when a command fails midway. So the
-- script runs in two phases: phase 1 only reads, checking every key it will write
-- (type) and every stored number it will read back; any problem returns an error
-- before the first write. Phase 2 then runs only commands that cannot fail on keys
-- of the checked types. The `#!lua` shebang (no flags) makes the server refuse the
-- whole script up front when it is over maxmemory, rather than at its first write.
--
-- ARGV (built by writer.py, constants from atelier.serving.popularity):
--   now_ms ("0": the server's clock), dedupe_ttl_ms, user_ttl_ms, item_ttl_ms,
--   session_ttl_ms, recent_cap, session_cap, decay_rate (per second),
--   global_key, global_epoch_s, global_max_items,
--   n_windows, then per window: key prefix, bucket_s, expiry offset (s),
--   n_patterns, then per id-keyed key (dedupe, recent, profile, affinity,
--   item_clicks, item, session): prefix, suffix,
--   then the events, 5 fields each: event_id, user_id, item_id, event_ms, session_id.
-- Returns one integer per event: 1 applied, 0 duplicate (nothing changed), 2 not applied
-- because the article is not in the catalogue (no `item:{item_id}` hash; nothing changed).
-- Ids are validated before they get here (atelier.serving.ids: no ':' in any of them).

local ERROR_CODE = 'FEATURESTORE'

local cursor = 0
local function arg()
    cursor = cursor + 1
    return ARGV[cursor]
end
local function number_arg()
    return tonumber(arg())
end

local now_ms = number_arg()
if now_ms == 0 then
    local time = redis.call('TIME')
    now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end
local dedupe_ttl_ms = number_arg()
local user_ttl_ms = number_arg()
local item_ttl_ms = number_arg()
local session_ttl_ms = number_arg()
local recent_cap = number_arg()
local session_cap = number_arg()
local decay_rate = number_arg()
local global_key = arg()
local global_epoch_s = number_arg()
local global_max_items = number_arg()

local windows = {}
for i = 1, number_arg() do
    windows[i] = { prefix = arg(), bucket_ms = number_arg() * 1000, expiry_offset_s = number_arg() }
end

local patterns = {}
for _, name in ipairs({ 'dedupe', 'recent', 'profile', 'affinity', 'item_clicks', 'item', 'session' }) do
    patterns[name] = { arg(), arg() }
end
local function key(name, id)
    local pattern = patterns[name]
    return pattern[1] .. id .. pattern[2]
end

local function fmt(value)
    -- Lua's own number-to-string conversion keeps only 14 digits.
    return string.format('%.17g', value)
end

local function fail(index, event_id, problem)
    return redis.error_reply(string.format('%s event=%d id=%s: %s', ERROR_CODE, index - 1, event_id, problem))
end

-- Phase 1: read and validate, no writes.

local checked_types = {}
local function wrong_type(name, expected)
    if checked_types[name] then
        return nil
    end
    local found = redis.call('TYPE', name).ok
    if found ~= 'none' and found ~= expected then
        return string.format('key %s holds a %s, expected a %s', name, found, expected)
    end
    checked_types[name] = true
    return nil
end

-- Hash fields holding numbers, read once in phase 1 and kept current by phase 2:
-- stored[key][field] = number, or false when absent.
local stored = {}
local function load_numbers(name, ...)
    local fields = { ... }
    local cached = stored[name]
    if cached == nil then
        cached = {}
        stored[name] = cached
    end
    local wanted = {}
    for _, field in ipairs(fields) do
        if cached[field] == nil then
            table.insert(wanted, field)
        end
    end
    if #wanted > 0 then
        local values = redis.call('HMGET', name, unpack(wanted))
        for i, field in ipairs(wanted) do
            if values[i] then
                local number = tonumber(values[i])
                if number == nil then
                    return string.format('field %s of %s is not a number: %s', field, name, values[i])
                end
                cached[field] = number
            else
                cached[field] = false
            end
        end
    end
    local present = 0
    for _, field in ipairs(fields) do
        if cached[field] then
            present = present + 1
        end
    end
    if present ~= 0 and present ~= #fields then
        return string.format('fields %s of %s are incomplete', table.concat(fields, ','), name)
    end
    return nil
end

local events = {}
local seen_ids = {}
local first_event = cursor
local n_events = (#ARGV - first_event) / 5
if n_events ~= math.floor(n_events) then
    return redis.error_reply(ERROR_CODE .. ' ARGV does not hold whole events')
end

for index = 1, n_events do
    local base = first_event + (index - 1) * 5
    local event = {
        id = ARGV[base + 1],
        user = ARGV[base + 2],
        item = ARGV[base + 3],
        ms = tonumber(ARGV[base + 4]),
        session = ARGV[base + 5],
    }
    if event.ms == nil or event.ms <= 0 then
        return fail(index, event.id, 'event time is not a positive number')
    end
    -- Per user: the same event id from two users is two clicks (keys.dedupe spells the same ':').
    event.dedupe = key('dedupe', event.user .. ':' .. event.id)
    event.duplicate = seen_ids[event.dedupe] or redis.call('EXISTS', event.dedupe) == 1
    -- The catalogue's item hash is only read: a click on an article without one is not applied
    -- (the features service refuses those, but accepts clicks unchecked while Redis is down).
    local item = key('item', event.item)
    event.unknown = not event.duplicate and redis.call('TYPE', item).ok ~= 'hash'
    if not event.duplicate and not event.unknown then
        seen_ids[event.dedupe] = true
        event.recent = key('recent', event.user)
        event.profile = key('profile', event.user)
        event.affinity = key('affinity', event.user)
        event.item_clicks = key('item_clicks', event.item)
        local category = redis.call('HGET', item, 'category')
        if category and category ~= '' then
            event.score_field = 's:' .. category
            event.time_field = 't:' .. category
        end
        event.buckets = {}
        for _, window in ipairs(windows) do
            local start_ms = math.floor(event.ms / window.bucket_ms) * window.bucket_ms
            local expires_at_s = start_ms / 1000 + window.expiry_offset_s
            if expires_at_s * 1000 > now_ms then
                table.insert(event.buckets, { key = window.prefix .. fmt(start_ms / 1000), expires_at_s = expires_at_s })
            end
        end
        if event.session ~= '' then
            event.session_key = key('session', event.session)
        end

        local problem = wrong_type(event.recent, 'list')
            or wrong_type(event.profile, 'hash')
            or wrong_type(event.affinity, 'hash')
            or wrong_type(event.item_clicks, 'hash')
            or wrong_type(global_key, 'zset')
            or load_numbers(event.profile, 'last_active_ms')
            or load_numbers(event.item_clicks, 's', 't')
            or (event.score_field and load_numbers(event.affinity, event.score_field, event.time_field))
            or (event.session_key and wrong_type(event.session_key, 'list'))
        for _, bucket in ipairs(event.buckets) do
            problem = problem or wrong_type(bucket.key, 'zset')
        end
        if problem then
            return fail(index, event.id, problem)
        end
    end
    events[index] = event
end

-- Phase 2: write. Only commands that cannot fail on keys of the checked types.

local function decay(elapsed_ms)
    return math.exp(-decay_rate * (elapsed_ms / 1000))
end

-- Decays the stored score to the event time and adds the click; a click older than
-- the stored time adds its own decayed weight and keeps the stored time.
local function accumulate(name, score_field, time_field, event_ms)
    local fields = stored[name]
    local score, time = fields[score_field], fields[time_field]
    if not score then
        score, time = 1, event_ms
    elseif event_ms >= time then
        score, time = score * decay(event_ms - time) + 1, event_ms
    else
        score = score + decay(time - event_ms)
    end
    fields[score_field], fields[time_field] = score, time
    redis.call('HSET', name, score_field, fmt(score), time_field, fmt(time))
end

-- TTLs are set once per key, after the batch's writes (the same result as after each event).
local expiry_keys, expiry_commands, expiry_values = {}, {}, {}
local function expire_later(name, command, value)
    if expiry_commands[name] == nil then
        table.insert(expiry_keys, name)
    end
    expiry_commands[name], expiry_values[name] = command, value
end

local function entry_time(entry)
    return tonumber(string.match(entry, '|(%d+)$')) or 0
end

-- Keeps the list newest first by event time even for a late (retried) event.
local function insert_entry(name, entry, event_ms, cap)
    local head = redis.call('LINDEX', name, 0)
    if not head or entry_time(head) <= event_ms then
        redis.call('LPUSH', name, entry)
    else
        local placed = false
        for _, existing in ipairs(redis.call('LRANGE', name, 0, -1)) do
            if entry_time(existing) <= event_ms then
                -- The first element equal to `existing` is this one: any earlier equal one would have the same time.
                redis.call('LINSERT', name, 'BEFORE', existing, entry)
                placed = true
                break
            end
        end
        if not placed then
            redis.call('RPUSH', name, entry)
        end
    end
    redis.call('LTRIM', name, 0, cap - 1)
end

local applied = {}
local any_applied = false
for index, event in ipairs(events) do
    if event.duplicate then
        applied[index] = 0
    elseif event.unknown then
        applied[index] = 2
    else
        applied[index] = 1
        any_applied = true
        redis.call('SET', event.dedupe, '1', 'PX', dedupe_ttl_ms)

        local entry = event.item .. '|' .. fmt(event.ms)
        insert_entry(event.recent, entry, event.ms, recent_cap)

        local profile = stored[event.profile]
        if not profile.last_active_ms or event.ms > profile.last_active_ms then
            profile.last_active_ms = event.ms
            redis.call('HSET', event.profile, 'last_active_ms', fmt(event.ms))
        end

        if event.score_field then
            accumulate(event.affinity, event.score_field, event.time_field, event.ms)
        end
        expire_later(event.recent, 'PEXPIRE', user_ttl_ms)
        expire_later(event.profile, 'PEXPIRE', user_ttl_ms)
        expire_later(event.affinity, 'PEXPIRE', user_ttl_ms)

        accumulate(event.item_clicks, 's', 't', event.ms)
        expire_later(event.item_clicks, 'PEXPIRE', item_ttl_ms)

        for _, bucket in ipairs(event.buckets) do
            redis.call('ZINCRBY', bucket.key, 1, event.item)
            expire_later(bucket.key, 'EXPIREAT', fmt(bucket.expires_at_s))
        end

        local increment = math.exp(decay_rate * (event.ms / 1000 - global_epoch_s))
        redis.call('ZINCRBY', global_key, fmt(increment), event.item)

        if event.session_key then
            insert_entry(event.session_key, entry, event.ms, session_cap)
            expire_later(event.session_key, 'PEXPIRE', session_ttl_ms)
        end
    end
end

for _, name in ipairs(expiry_keys) do
    redis.call(expiry_commands[name], name, expiry_values[name])
end

if any_applied then
    -- Once per batch: the batch is atomic, so trimming after it is as good as after each event.
    redis.call('ZREMRANGEBYRANK', global_key, 0, -global_max_items - 1)
end

return applied
