-- Shared by the feature store's write scripts (prepended to each by scripts.py).
--
-- Redis does not roll back a script's writes when a command fails midway. So each script runs in
-- two phases: phase 1 only reads, checking every key it will write (type) and every stored number
-- it will read back; any problem returns an error before the first write. Phase 2 then runs only
-- commands that cannot fail on keys of the checked types. The `#!lua` shebang (no flags) makes the
-- server refuse the whole script up front when it is over maxmemory, rather than at its first write.
-- Every key a script touches is declared in KEYS and shares one hash tag (atelier.serving.feature_store.keys),
-- so each call runs on one Redis Cluster slot.

local ERROR_CODE = 'FEATURESTORE'

local function server_ms(given)
    local now_ms = tonumber(given)
    if now_ms == 0 then
        local time = redis.call('TIME')
        now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
    end
    return now_ms
end

local function fmt(value)
    -- Lua's own number-to-string conversion keeps only 14 digits.
    return string.format('%.17g', value)
end

local function fail(index, event_id, problem)
    return redis.error_reply(string.format('%s event=%d id=%s: %s', ERROR_CODE, index - 1, event_id, problem))
end

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

-- Decays the stored score to the event time and adds the click; a click older than
-- the stored time adds its own decayed weight and keeps the stored time.
local function accumulate(name, score_field, time_field, event_ms, decay_rate)
    local fields = stored[name]
    local score, time = fields[score_field], fields[time_field]
    if not score then
        score, time = 1, event_ms
    elseif event_ms >= time then
        score, time = score * math.exp(-decay_rate * ((event_ms - time) / 1000)) + 1, event_ms
    else
        score = score + math.exp(-decay_rate * ((time - event_ms) / 1000))
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
local function apply_expiries()
    for _, name in ipairs(expiry_keys) do
        redis.call(expiry_commands[name], name, expiry_values[name])
    end
end

-- The events of a call: after `header` values, ARGV holds `args_per_event` values per event (its id, article
-- id and time first) and KEYS `keys_per_event` keys. Each event is a table with id, item, ms and a, k: the
-- offsets of its values in ARGV and KEYS. Returns nil and an error reply when they do not add up.
local function read_events(header, args_per_event, keys_per_event)
    local n_events = (#ARGV - header) / args_per_event
    if n_events ~= math.floor(n_events) or #KEYS ~= n_events * keys_per_event then
        return nil, redis.error_reply(ERROR_CODE .. ' KEYS and ARGV do not hold whole events')
    end
    local events = {}
    for index = 1, n_events do
        local a = header + (index - 1) * args_per_event
        local event = { id = ARGV[a + 1], item = ARGV[a + 2], ms = tonumber(ARGV[a + 3]), a = a }
        event.k = (index - 1) * keys_per_event
        if event.ms == nil or event.ms <= 0 then
            return nil, fail(index, event.id, 'event time is not a positive number')
        end
        events[index] = event
    end
    return events
end

-- Whether the click its marker names was applied before (by an earlier call or earlier in this one).
local marked = {}
local function applied_before(marker)
    local before = marked[marker] or redis.call('EXISTS', marker) == 1
    marked[marker] = true
    return before
end
