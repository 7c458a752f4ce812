-- Keywarden pool logic for the Redis state backend: every handout, report, membership sync and
-- admin action on a pool is one call of this script, so it is atomic across server instances.
-- It mirrors server/pool.ts rule for rule (strategies, limits, windows, blocks, backoff, probing,
-- correlated throttling, pool cap, leases); test/server/backends.test.ts runs one suite on both.
--
-- KEYS[1]: the pool's key prefix, e.g. "keywarden:{plantid}:" (one hash slot per pool).
-- ARGV[1]: op; ARGV[2]: now (ms); ARGV[3]: policy JSON; ARGV[4]: window bounds JSON
--          {minute={s,e}, hour=..., day=..., month=...} computed by the server for `now`
--          (day and month in the pool's reset time zone); ARGV[5]: op arguments JSON.
-- Returns a JSON string.
--
-- Layout: P.."meta" hash (cur, turn, pwS, pwC, thU, thR, seq); P.."pos" zset keyId -> file
-- position (membership); P.."av" zset of usable keys by position; P.."lru" zset of usable keys
-- by use sequence; P.."wk" zset of keys out with a known return time; P.."k:"..keyId hash per
-- key; P.."r429" hash of recent 429s; P.."hist" hash minute start -> handouts.

local P = KEYS[1]
local op = ARGV[1]
local now = tonumber(ARGV[2])
local pol = cjson.decode(ARGV[3])
local B = cjson.decode(ARGV[4])
local A = cjson.decode(ARGV[5])
local limits = pol.limits
local KINDS = { 'minute', 'hour', 'day', 'month' }
local LIMIT_OF = { minute = 'perMinute', hour = 'perHour', day = 'perDay', month = 'perMonth' }
local F = { minute = 'm', hour = 'h', day = 'd', month = 'o' }
local CORRELATION_MS = 10000
local DEFAULT_THROTTLE_MS = 30000
local BASE_BACKOFF_MS = 60000

local function num(v)
  if v == nil or v == false then return nil end
  return tonumber(v)
end

local function lim(name)
  local v = limits[name]
  if v == nil or v == cjson.null then return nil end
  return v
end

-- Records are string maps with change tracking; save() writes only what changed.
local function load(id)
  local arr = redis.call('HGETALL', P .. 'k:' .. id)
  local r = { id = id, f = {}, ch = {} }
  for i = 1, #arr, 2 do r.f[arr[i]] = arr[i + 1] end
  return r
end
local function get(r, k) return r.f[k] end
local function set(r, k, v)
  if v ~= nil then v = tostring(v) end
  if r.f[k] ~= v then
    r.f[k] = v
    r.ch[k] = true
  end
end
local function save(r)
  local hset, hdel = {}, {}
  for k in pairs(r.ch) do
    if r.f[k] == nil then hdel[#hdel + 1] = k else
      hset[#hset + 1] = k
      hset[#hset + 1] = r.f[k]
    end
  end
  if #hset > 0 then redis.call('HSET', P .. 'k:' .. r.id, unpack(hset)) end
  if #hdel > 0 then redis.call('HDEL', P .. 'k:' .. r.id, unpack(hdel)) end
  -- an empty hash would vanish; keep a marker so the key's record exists
  if #hset == 0 and #hdel > 0 and redis.call('EXISTS', P .. 'k:' .. r.id) == 0 then
    redis.call('HSET', P .. 'k:' .. r.id, 't', '0')
  end
  r.ch = {}
end

local function count(r, kind)
  if num(get(r, F[kind] .. 'S')) == B[kind][1] then return num(get(r, F[kind] .. 'C')) or 0 end
  return 0
end

local function total(r) return num(get(r, 't')) or 0 end

local function backoff(level)
  local ms = BASE_BACKOFF_MS * 2 ^ math.min(level, 30)
  if ms > pol.maxBackoffMs then ms = pol.maxBackoffMs end
  return ms
end

local function settle(r)
  local bU = num(get(r, 'bU'))
  if bU and now >= bU then
    set(r, 'bU', nil); set(r, 'bR', nil); set(r, 'pr', 'ready')
  end
  local pr = get(r, 'pr')
  if pr and pr ~= 'ready' and now >= tonumber(pr) then
    set(r, 'pr', nil); set(r, 'bl', 0)
  end
  local eU = num(get(r, 'eU'))
  if eU and now >= eU then
    set(r, 'eU', nil); set(r, 'eR', nil)
  end
end

-- quota: reason, until (until -1 = never, i.e. `total`)
local function quotaHit(r)
  local reason, untilMs = nil, 0
  local tl = lim('total')
  if tl and total(r) >= tl then
    reason = 'quota: total ' .. total(r) .. '/' .. tl
    untilMs = -1
  end
  for _, kind in ipairs(KINDS) do
    local l = lim(LIMIT_OF[kind])
    if l then
      local used = count(r, kind)
      if used >= l then
        if reason == nil then reason = 'quota: ' .. LIMIT_OF[kind] .. ' ' .. used .. '/' .. l end
        if untilMs ~= -1 and B[kind][2] > untilMs then untilMs = B[kind][2] end
      end
    end
  end
  return reason, untilMs
end

local function limitsLeft(r)
  local left = nil
  local tl = lim('total')
  if tl then left = tl - total(r) end
  for _, kind in ipairs(KINDS) do
    local l = lim(LIMIT_OF[kind])
    if l then
      local v = l - count(r, kind)
      if left == nil or v < left then left = v end
    end
  end
  if left ~= nil and left < 0 then left = 0 end
  return left
end

-- status, reason, until (nil: none), usable
local function evaluate(r)
  if get(r, 'xR') then return 'disabled', get(r, 'xR'), nil, false end
  local exp = num(get(r, 'exp'))
  if exp and now >= exp then return 'expired', 'expired', nil, false end
  if get(r, 'bU') then return 'blocked', get(r, 'bR'), num(get(r, 'bU')), false end
  if get(r, 'eU') then return 'exhausted', get(r, 'eR'), num(get(r, 'eU')), false end
  local qr, qu = quotaHit(r)
  if qr then
    if qu == -1 then qu = nil end
    return 'exhausted', qr, qu, false
  end
  local pr = get(r, 'pr')
  if pr == 'ready' then return 'probing', 'probing after block', nil, true end
  if pr then return 'probing', 'probe in flight', tonumber(pr), false end
  return 'available', nil, nil, true
end

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

local function first(zset)
  local x = redis.call('ZRANGE', P .. zset, 0, 0)
  return x[1]
end

local function pick()
  if redis.call('ZCARD', P .. 'av') == 0 then return nil end
  local s = pol.strategy
  if s == 'round-robin' then
    local cur = meta.cur
    local turn = num(meta.turn) or 0
    if cur and redis.call('ZSCORE', P .. 'av', cur) and turn < pol.rotateEvery then return cur end
    local cpos = cur and redis.call('ZSCORE', P .. 'pos', cur)
    if cpos then
      local nx = redis.call('ZRANGEBYSCORE', P .. 'av', '(' .. cpos, '+inf', 'LIMIT', 0, 1)
      if nx[1] then return nx[1] end
    end
    return first('av')
  elseif s == 'fill-first' then
    return first('av')
  elseif s == 'random' then
    local n = redis.call('ZCARD', P .. 'av')
    local idx = math.floor(A.rng * n)
    if idx >= n then idx = n - 1 end
    return redis.call('ZRANGE', P .. 'av', idx, idx)[1]
  else
    return first('lru')
  end
end

local function recordHistory(g)
  local start = B.minute[1]
  local v = redis.call('HINCRBY', P .. 'hist', start, g)
  if v == g then
    for _, k in ipairs(redis.call('HKEYS', P .. 'hist')) do
      if tonumber(k) + 60000 <= now - 3600000 then redis.call('HDEL', P .. 'hist', k) end
    end
  end
end

local function handout()
  local events = {}
  local thU = num(meta.thU)
  if thU then
    if now < thU then return { ok = false, reason = 'pool_throttled', retryAfterMs = thU - now } end
    setMeta('thU', nil); setMeta('thR', nil)
  end
  if num(meta.pwS) ~= B.minute[1] then
    setMeta('pwS', B.minute[1]); setMeta('pwC', 0)
  end
  local cap = pol.poolPerMinute
  if cap ~= cjson.null and cap ~= nil and num(meta.pwC) >= cap then
    return { ok = false, reason = 'pool_rate_limited', retryAfterMs = B.minute[2] - now }
  end
  wakeDue()
  local r
  while true do
    local id = pick()
    if not id then
      local w = nextWake()
      local retry = cjson.null
      if w then retry = math.max(0, w - now) end
      return { ok = false, reason = 'no_key_available', retryAfterMs = retry }
    end
    r = load(id)
    local status, reason, untilMs, usable = place(r)
    if usable then break end
    events[#events + 1] = { type = 'key_out', keyId = id, status = status, reason = reason or status, ['until'] = untilMs or cjson.null }
  end

  local g = math.max(1, math.floor(A.want or 1))
  if g > 1 then
    local left = limitsLeft(r)
    if left and left < g then g = left end
    if cap ~= cjson.null and cap ~= nil and cap - num(meta.pwC) < g then g = cap - num(meta.pwC) end
    if get(r, 'pr') == 'ready' then g = 1 end
  end

  for _, kind in ipairs(KINDS) do
    if num(get(r, F[kind] .. 'S')) == B[kind][1] then
      set(r, F[kind] .. 'C', (num(get(r, F[kind] .. 'C')) or 0) + g)
    else
      set(r, F[kind] .. 'S', B[kind][1]); set(r, F[kind] .. 'C', g)
    end
  end
  set(r, 't', total(r) + g)
  set(r, 'lu', now)
  set(r, 'us', redis.call('HINCRBY', P .. 'meta', 'seq', 1))
  setMeta('pwC', num(meta.pwC) + g)
  recordHistory(g)

  local turn = num(meta.turn) or 0
  if meta.cur ~= r.id then
    local from = meta.cur
    local wasUsable = from ~= nil and redis.call('ZSCORE', P .. 'av', from) ~= false
    local why = 'unavailable'
    if wasUsable or from == nil then why = 'turn' end
    events[#events + 1] = { type = 'rotate', from = from or cjson.null, to = r.id, why = why }
    setMeta('cur', r.id)
    turn = 0
  elseif turn >= pol.rotateEvery then
    turn = 0
  end
  turn = turn + g
  setMeta('turn', turn)

  if get(r, 'pr') == 'ready' then set(r, 'pr', now + pol.probeTimeoutMs) end
  local status, reason, untilMs, usable = place(r)
  if not usable and status ~= 'probing' then
    events[#events + 1] = { type = 'key_out', keyId = r.id, status = status, reason = reason or status, ['until'] = untilMs or cjson.null }
  end
  local remaining = limitsLeft(r)
  if pol.strategy == 'round-robin' then
    local turnLeft = math.max(0, pol.rotateEvery - turn)
    if remaining == nil or turnLeft < remaining then remaining = turnLeft end
  end
  if remaining == nil then remaining = cjson.null end
  return { ok = true, keyId = r.id, remaining = remaining, granted = g, events = events }
end

local function block(r, forMs, reason, climb)
  set(r, 'pr', nil)
  set(r, 'bU', now + math.max(0, forMs))
  set(r, 'bR', reason)
  if climb then set(r, 'bl', (num(get(r, 'bl')) or 0) + 1) end
end

local function splitFailures(s)
  local out = {}
  if s then for v in string.gmatch(s, '[^,]+') do out[#out + 1] = tonumber(v) end end
  return out
end

local function checkCorrelated()
  local all = redis.call('HGETALL', P .. 'r429')
  local recent = {}
  local n = 0
  for i = 1, #all, 2 do
    local id, e = all[i], cjson.decode(all[i + 1])
    if e.at <= now - CORRELATION_MS or not redis.call('ZSCORE', P .. 'pos', id) then
      redis.call('HDEL', P .. 'r429', id)
    else
      recent[id] = e
      n = n + 1
    end
  end
  local size = redis.call('ZCARD', P .. 'pos')
  if n < 2 or n * 2 <= size then return nil end
  local shortest = nil
  for id, e in pairs(recent) do
    local r = load(id)
    set(r, 'bU', e.bU ~= cjson.null and e.bU or nil)
    set(r, 'bR', e.bR ~= cjson.null and e.bR or nil)
    set(r, 'bl', e.bl)
    set(r, 'pr', e.pr ~= cjson.null and e.pr or nil)
    place(r)
    if e.ra ~= cjson.null and (shortest == nil or e.ra < shortest) then shortest = e.ra end
  end
  local untilMs = now + (shortest or DEFAULT_THROTTLE_MS)
  setMeta('thU', untilMs)
  setMeta('thR', n .. ' of ' .. size .. ' keys reported 429 within ' .. (CORRELATION_MS / 1000) .. 's')
  redis.call('DEL', P .. 'r429')
  return { type = 'pool_throttled', ['until'] = untilMs, keys = n }
end

local function report()
  local id = A.keyId
  if not redis.call('ZSCORE', P .. 'pos', id) then return { ok = false, reason = 'unknown_key' } end
  local r = load(id)
  settle(r)
  local outcome, label, ra = A.outcome, A.label, A.retryAfterMs
  if ra == cjson.null then ra = nil end
  local pr = get(r, 'pr')
  local probingOut = pr ~= nil and pr ~= 'ready'
  local bl = num(get(r, 'bl')) or 0
  local events = {}
  if outcome == 'ok' then
    set(r, 'f', nil); set(r, 'bl', 0); set(r, 'pr', nil)
  elseif outcome == 'rate_limited' then
    local thU = num(meta.thU)
    if not (thU and now < thU) then
      local prior = { at = now, ra = ra or cjson.null, bU = num(get(r, 'bU')) or cjson.null, bR = get(r, 'bR') or cjson.null, bl = bl, pr = get(r, 'pr') or cjson.null }
      redis.call('HSET', P .. 'r429', id, cjson.encode(prior))
      block(r, ra or backoff(bl), label, ra == nil)
      save(r)
      local ev = checkCorrelated()
      if ev then return { ok = true, outcome = outcome, events = { ev } } end
      r = load(id)
    end
  elseif outcome == 'exhausted' then
    set(r, 'pr', nil)
    set(r, 'eU', A.exhaustedUntil)
    if label == 'reported exhausted' then set(r, 'eR', label) else set(r, 'eR', label .. ' (quota)') end
  elseif outcome == 'invalid' then
    set(r, 'pr', nil)
    set(r, 'xR', A.invalidReason)
    set(r, 'xL', get(r, 'lh') or '')
  elseif outcome == 'error' then
    if probingOut then
      block(r, backoff(bl), label .. ' while probing', true)
    else
      local kept = {}
      for _, t in ipairs(splitFailures(get(r, 'f'))) do
        if t > now - pol.failureWindowMs and t <= now then kept[#kept + 1] = t end
      end
      kept[#kept + 1] = now
      if #kept >= pol.maxFailures then
        set(r, 'f', nil)
        block(r, backoff(bl), #kept .. ' errors in ' .. (pol.failureWindowMs / 1000) .. 's (last: ' .. label .. ')', true)
      else
        set(r, 'f', table.concat(kept, ','))
      end
    end
  end
  local status, reason, untilMs, usable = place(r)
  if not usable and outcome ~= 'ok' then
    events[#events + 1] = { type = 'key_out', keyId = id, status = status, reason = reason or status, ['until'] = untilMs or cjson.null }
  end
  return { ok = true, outcome = outcome, events = events }
end

-- Membership follows the key file: A.keys = { {id, lh, exp}, ... } in file order.
local function sync()
  local old = redis.call('ZRANGE', P .. 'pos', 0, -1)
  local keep = {}
  for i, k in ipairs(A.keys) do keep[k.id] = i end
  local summary = { added = 0, removed = 0, kept = 0, reenabled = 0 }
  local was = {}
  for _, id in ipairs(old) do
    was[id] = true
    if not keep[id] then
      summary.removed = summary.removed + 1
      redis.call('ZREM', P .. 'pos', id); redis.call('ZREM', P .. 'av', id)
      redis.call('ZREM', P .. 'lru', id); redis.call('ZREM', P .. 'wk', id)
    end
  end
  for i, k in ipairs(A.keys) do
    if was[k.id] then summary.kept = summary.kept + 1 else summary.added = summary.added + 1 end
    redis.call('ZADD', P .. 'pos', i - 1, k.id)
    local r = load(k.id)
    set(r, 'lh', k.lh)
    if k.exp == cjson.null then set(r, 'exp', nil) else set(r, 'exp', k.exp) end
    if get(r, 'xR') and get(r, 'xL') ~= k.lh then
      set(r, 'xR', nil); set(r, 'xL', nil)
      summary.reenabled = summary.reenabled + 1
    end
    if get(r, 't') == nil then set(r, 't', 0) end
    -- never used: least-recently-used takes these first, in file order (as Pool does)
    if get(r, 'us') == nil then set(r, 'us', i - 1 - 1000000000) end
    place(r)
  end
  if meta.cur and not keep[meta.cur] then
    setMeta('cur', nil); setMeta('turn', 0)
  end
  return summary
end

local function admin()
  local id = A.keyId
  if not redis.call('ZSCORE', P .. 'pos', id) then return { ok = false } end
  local r = load(id)
  if A.action == 'disable' then
    set(r, 'xR', A.reason); set(r, 'xL', get(r, 'lh') or '')
  elseif A.action == 'enable' then
    for _, k in ipairs({ 'xR', 'xL', 'bU', 'bR', 'eU', 'eR', 'pr', 'f' }) do set(r, k, nil) end
    set(r, 'bl', 0)
  elseif A.action == 'reset' then
    for _, kind in ipairs(KINDS) do set(r, F[kind] .. 'S', nil); set(r, F[kind] .. 'C', nil) end
    set(r, 't', 0); set(r, 'eU', nil); set(r, 'eR', nil)
  end
  place(r)
  return { ok = true }
end

local result
if op == 'handout' then result = handout()
elseif op == 'report' then result = report()
elseif op == 'sync' then result = sync()
elseif op == 'admin' then result = admin()
else return redis.error_reply('unknown op ' .. tostring(op)) end
return cjson.encode(result)
