-- Applies clicks to their users' keys: recent clicks, profile, category affinity and session lists.
-- Called after the articles' script, which says which clicks count and their categories. On a cluster
-- one call holds the clicks of the users of one slot; on a single server, a whole batch.
--
-- KEYS: per event, its user's recent list, profile hash and affinity hash, the event's marker and its
--   session's list (a key is always given; ARGV says whether the click has a session).
-- ARGV: dedupe_ttl_ms, user_ttl_ms, session_ttl_ms, recent_cap, session_cap, decay_rate,
--   then per event: event_id, article_id, event_ms, category ('' none), has_session ('1' or '0').
-- Returns per event: 1 applied, 0 duplicate (nothing changed).

local dedupe_ttl_ms = tonumber(ARGV[1])
local user_ttl_ms = tonumber(ARGV[2])
local session_ttl_ms = tonumber(ARGV[3])
local recent_cap = tonumber(ARGV[4])
local session_cap = tonumber(ARGV[5])
local decay_rate = tonumber(ARGV[6])
local HEADER, ARGS_PER_EVENT, KEYS_PER_EVENT = 6, 5, 5

local events, problem = read_events(HEADER, ARGS_PER_EVENT, KEYS_PER_EVENT)
if not events then
    return problem
end

-- Phase 1: read and validate, no writes.
for index, event in ipairs(events) do
    local a, k = event.a, event.k
    event.category = ARGV[a + 4]
    event.recent, event.profile, event.affinity, event.marker = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]
    if ARGV[a + 5] == '1' then
        event.session = KEYS[k + 5]
    end
    event.duplicate = applied_before(event.marker)
    if not event.duplicate then
        if event.category ~= '' then
            event.score_field = 's:' .. event.category
            event.time_field = 't:' .. event.category
        end
        local problem = wrong_type(event.recent, 'list')
            or wrong_type(event.profile, 'hash')
            or wrong_type(event.affinity, 'hash')
            or load_numbers(event.profile, 'last_active_ms')
            or (event.score_field and load_numbers(event.affinity, event.score_field, event.time_field))
            or (event.session and wrong_type(event.session, 'list'))
        if problem then
            return fail(index, event.id, problem)
        end
    end
end

-- Phase 2: write. Only commands that cannot fail on keys of the checked types.

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
for index, event in ipairs(events) do
    if event.duplicate then
        applied[index] = 0
    else
        applied[index] = 1
        redis.call('SET', event.marker, '1', 'PX', dedupe_ttl_ms)
        local entry = event.item .. '|' .. fmt(event.ms)
        insert_entry(event.recent, entry, event.ms, recent_cap)
        local fields = stored[event.profile]
        if not fields.last_active_ms or event.ms > fields.last_active_ms then
            fields.last_active_ms = event.ms
            redis.call('HSET', event.profile, 'last_active_ms', fmt(event.ms))
        end
        if event.score_field then
            accumulate(event.affinity, event.score_field, event.time_field, event.ms, decay_rate)
        end
        expire_later(event.recent, 'PEXPIRE', user_ttl_ms)
        expire_later(event.profile, 'PEXPIRE', user_ttl_ms)
        expire_later(event.affinity, 'PEXPIRE', user_ttl_ms)
        if event.session then
            insert_entry(event.session, entry, event.ms, session_cap)
            expire_later(event.session, 'PEXPIRE', session_ttl_ms)
        end
    end
end
apply_expiries()
return applied
