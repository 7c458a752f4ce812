-- A pool's keys inside Redis as records, and the indexes that find them: the part of the script
-- between rules.lua (the rules) and pool.lua (the operations). A record is a key's hash read
-- whole (load), changed through rules.lua's get/set, and written back field by field (save),
-- which also moves the key between the pool's indexes (place). The layout is pool.lua's header.

-- A hash read whole as a record: its fields, and which of them changed since (none yet).
local function readRecord(key)
  local arr = redis.call('HGETALL', key)
  local r = { f = {}, ch = {} }
  for i = 1, #arr, 2 do r.f[arr[i]] = arr[i + 1] end
  return r
end

local function load(id)
  local r = readRecord(P .. 'k:' .. id)
  r.id = id
  return r
end

-- Writes back only what changed of a record read with readRecord; true when anything was.
local function writeRecord(key, r)
  local hset, hdel = {}, {}
  for k in pairs(r.ch) do
    if r.f[k] == nil then hdel[#hdel + 1] = k else
      hset[#hset + 1] = k
      hset[#hset + 1] = r.f[k]
    end
  end
  if #hset > 0 then redis.call('HSET', key, unpack(hset)) end
  if #hdel > 0 then redis.call('HDEL', key, unpack(hdel)) end
  r.ch = {}
  return #hset > 0 or #hdel > 0, #hset
end

local function save(r)
  local changed, set = writeRecord(P .. 'k:' .. r.id, r)
  -- an empty hash would vanish; keep a marker so the key's record exists
  if changed and set == 0 and redis.call('EXISTS', P .. 'k:' .. r.id) == 0 then
    redis.call('HSET', P .. 'k:' .. r.id, 't', '0')
  end
end

-- Puts a record in the usable sets or, when out, in the wake set (if it returns on its own).
local function place(r)
  settle(r)
  local status, reason, untilMs, usable = evaluate(r)
  local id = r.id
  if usable then
    redis.call('ZREM', P .. 'wk', id)
    redis.call('ZADD', P .. 'av', redis.call('ZSCORE', P .. 'pos', id), id)
    redis.call('ZADD', P .. 'lru', num(get(r, 'us')) or 0, id)
  else
    redis.call('ZREM', P .. 'av', id)
    redis.call('ZREM', P .. 'lru', id)
    if untilMs then redis.call('ZADD', P .. 'wk', untilMs, id) else redis.call('ZREM', P .. 'wk', id) end
  end
  save(r)
  return status, reason, untilMs, usable
end

local function wakeDue()
  local due = redis.call('ZRANGEBYSCORE', P .. 'wk', '-inf', now)
  for _, id in ipairs(due) do
    redis.call('ZREM', P .. 'wk', id)
    place(load(id))
  end
end

local function nextWake()
  local w = redis.call('ZRANGE', P .. 'wk', 0, 0, 'WITHSCORES')
  if #w == 0 then return nil end
  return tonumber(w[2])
end

local meta = {}
do
  local arr = redis.call('HGETALL', P .. 'meta')
  for i = 1, #arr, 2 do meta[arr[i]] = arr[i + 1] end
end
local function setMeta(k, v)
  if v == nil then
    meta[k] = nil
    redis.call('HDEL', P .. 'meta', k)
  else
    meta[k] = tostring(v)
    redis.call('HSET', P .. 'meta', k, tostring(v))
  end
end

local function keyOut(r, status, reason, untilMs)
  return { type = 'key_out', keyId = r.id, status = status, reason = reason or status, ['until'] = untilMs or cjson.null }
end

local function first(zset)
  local x = redis.call('ZRANGE', P .. zset, 0, 0)
  return x[1]
end
