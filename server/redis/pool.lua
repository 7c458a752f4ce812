-- Keywarden's pool operations inside Redis: every handout, report, membership sync and admin
-- action on a pool is one run of rules.lua + store.lua + this file, so it is atomic across server
-- instances.
-- It follows server/pools/pool.ts operation for operation, applying the rules of rules.lua.
-- Returns a JSON string.
--
-- Layout: P.."meta" hash (cur, turn, pwS, pwC, thU, thR, seq, nseq, usync); P.."pos" zset keyId -> file
-- position (membership); P.."av" zset of usable keys by position; P.."lru" zset of usable keys
-- by use sequence; P.."wk" zset of keys out with a known return time; P.."k:"..keyId hash per
-- key; P.."r429" hash of recent 429s; P.."hist" hash minute start -> handouts; apps' ledgers (apps.lua).

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

-- forecast.ts recordHandout: per-minute counts, minutes older than the forecast window dropped
local function recordHandout(g)
  local start = B.minute[1]
  local v = redis.call('HINCRBY', P .. 'hist', start, g)
  if v == g then
    for _, k in ipairs(redis.call('HKEYS', P .. 'hist')) do
      if tonumber(k) + (B.minute[2] - B.minute[1]) <= now - C.FORECAST_WINDOW_MS then redis.call('HDEL', P .. 'hist', k) end
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
  if isNull(cap) then cap = nil end
  if cap and num(meta.pwC) >= cap then
    return { ok = false, reason = 'pool_rate_limited', retryAfterMs = B.minute[2] - now }
  end
  local ledger = nil
  if not isNull(A.app) then
    ledger = loadLedger(A.app)
    local hit = budgetHit(ledger, A.budget, A.want or 1)
    if hit then
      return { ok = false, reason = 'app_budget_exhausted', retryAfterMs = hit.untilMs - now, window = hit.window, limit = hit.limit }
    end
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
    events[#events + 1] = keyOut(r, status, reason, untilMs)
  end

  local want = A.want or 1
  if not isNull(A.block) and A.block > 0 then
    local budget = nil
    if ledger then budget = budgetLeft(ledger, A.budget) end
    want = leaseSize(want, A.block, limitsLeft(r), budget)
  end
  local left = nil
  if want > 1 then left = limitsLeft(r) end
  local capLeft = nil
  if cap then capLeft = cap - num(meta.pwC) end
  local g = grant(want, left, capLeft, get(r, 'pr') == 'ready')
  if ledger then
    chargeApp(ledger, g)
    saveLedger(ledger)
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
  recordHandout(g)

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
    turn = 0 -- the only usable key starts a new turn
  end
  turn = turn + g
  setMeta('turn', turn)

  if get(r, 'pr') == 'ready' then set(r, 'pr', now + pol.probeTimeoutSec * 1000) end
  local status, reason, untilMs, usable = place(r)
  if not usable and status ~= 'probing' then events[#events + 1] = keyOut(r, status, reason, untilMs) end
  local remaining = remainingAfter(limitsLeft(r), true, turn)
  if remaining == nil then remaining = cjson.null end
  return { ok = true, keyId = r.id, remaining = remaining, granted = g, events = events }
end

-- pool.ts throttleIfCorrelated: correlated 429s undo their keys' blocks and block the pool.
local function throttleIfCorrelated()
  local all = redis.call('HGETALL', P .. 'r429')
  local recent = {}
  local n = 0
  for i = 1, #all, 2 do
    local id, e = all[i], cjson.decode(all[i + 1])
    if e.at <= now - C.CORRELATION_WINDOW_MS or not redis.call('ZSCORE', P .. 'pos', id) then
      redis.call('HDEL', P .. 'r429', id)
    else
      recent[id] = e
      n = n + 1
    end
  end
  local size = redis.call('ZCARD', P .. 'pos')
  if not isCorrelated(n, size) then return nil end
  local shortest = nil
  for id, e in pairs(recent) do
    local r = load(id)
    set(r, 'bU', not isNull(e.bU) and e.bU or nil)
    set(r, 'bR', not isNull(e.bR) and e.bR or nil)
    set(r, 'bl', e.bl)
    set(r, 'pr', not isNull(e.pr) and e.pr or nil)
    place(r)
    if not isNull(e.ra) and (shortest == nil or e.ra < shortest) then shortest = e.ra end
  end
  local untilMs = now + (shortest or C.DEFAULT_POOL_THROTTLE_MS)
  setMeta('thU', untilMs)
  setMeta('thR', n .. ' of ' .. size .. ' keys reported 429 within ' .. (C.CORRELATION_WINDOW_MS / 1000) .. 's')
  redis.call('DEL', P .. 'r429')
  return { type = 'pool_throttled', ['until'] = untilMs, keys = n }
end

local function report()
  local id = A.keyId
  local rep = A.report
  if not redis.call('ZSCORE', P .. 'pos', id) then return { ok = false, reason = 'unknown_key' } end
  local r = load(id)
  settle(r)
  -- A 429 within a pool-wide throttle already in force is part of it: the key is not to blame.
  local thU = num(meta.thU)
  local withinThrottle = rep.outcome == 'rate_limited' and thU ~= nil and now < thU
  if not withinThrottle then
    if rep.outcome == 'rate_limited' then
      local prior = { at = now, ra = rep.retryAfterMs, bU = num(get(r, 'bU')) or cjson.null, bR = get(r, 'bR') or cjson.null, bl = num(get(r, 'bl')) or 0, pr = get(r, 'pr') or cjson.null }
      redis.call('HSET', P .. 'r429', id, cjson.encode(prior))
    end
    applyReport(r, rep)
    if rep.outcome == 'rate_limited' then
      save(r)
      local ev = throttleIfCorrelated()
      if ev then return { ok = true, events = { ev } } end
      r = load(id)
    end
  end
  local events = {}
  local status, reason, untilMs, usable = place(r)
  if not usable and rep.outcome ~= 'ok' then events[#events + 1] = keyOut(r, status, reason, untilMs) end
  return { ok = true, events = events }
end

-- Membership follows the key file: A.keys = { {id, lh, exp}, ... } in file order.
local function setKeys()
  local old = redis.call('ZRANGE', P .. 'pos', 0, -1)
  local keep = {}
  for i, k in ipairs(A.keys) do keep[k.id] = i end
  local summary = { added = 0, removed = 0, kept = 0, reenabled = 0, removedIds = {} }
  local was = {}
  for _, id in ipairs(old) do
    was[id] = true
    if not keep[id] then
      summary.removed = summary.removed + 1
      summary.removedIds[#summary.removedIds + 1] = id
      redis.call('ZREM', P .. 'pos', id); redis.call('ZREM', P .. 'av', id)
      redis.call('ZREM', P .. 'lru', id); redis.call('ZREM', P .. 'wk', id)
    end
  end
  for i, k in ipairs(A.keys) do
    if was[k.id] then summary.kept = summary.kept + 1 else summary.added = summary.added + 1 end
    redis.call('ZADD', P .. 'pos', i - 1, k.id)
    local r = load(k.id)
    set(r, 'lh', k.lh)
    if isNull(k.exp) then set(r, 'exp', nil) else set(r, 'exp', k.exp) end
    if get(r, 'xR') and get(r, 'xL') ~= k.lh then
      set(r, 'xR', nil); set(r, 'xL', nil)
      summary.reenabled = summary.reenabled + 1
    end
    if get(r, 't') == nil then set(r, 't', 0) end
    -- first seen now: least-recently-used takes it before every used key, in file order
    if get(r, 'us') == nil then set(r, 'us', C.NEVER_USED_SEQ_BASE + redis.call('HINCRBY', P .. 'meta', 'nseq', 1)) end
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
  applyAdmin(r, A.action, not isNull(A.reason) and A.reason or nil)
  if A.action == 'reset' then
    for _, kind in ipairs(KINDS) do set(r, F[kind] .. 'S', nil); set(r, F[kind] .. 'C', nil) end
  end
  place(r)
  return { ok = true }
end

-- pool.ts recordUpstream: A.sync (the pool's upstreamSync, JSON; null for what the proxy read);
-- for a check that reached the upstream also A.keyId, A.hold (rules.ts upstreamHoldFor, or null),
-- A.credits (JSON, or null) with its A.plan (credit limits) and A.used, and A.servedBefore (the
-- key's total when it was asked, or null).
local function recordUpstream()
  if not isNull(A.sync) then setMeta('usync', A.sync) end
  if isNull(A.keyId) then return { ok = true, revived = false, events = {} } end
  if not redis.call('ZSCORE', P .. 'pos', A.keyId) then return { ok = false, revived = false, events = {} } end
  local r = load(A.keyId)
  settle(r)
  local priorS, priorR = get(r, 'uS'), get(r, 'uR')
  local hold = nil
  if not isNull(A.hold) then hold = A.hold end
  applyUpstream(r, hold)
  if not isNull(A.credits) then set(r, 'uc', A.credits) end
  if not isNull(A.plan) then
    for field, window in pairs({ pD = 'day', pW = 'week', pO = 'month', pT = 'total' }) do
      if isNull(A.plan[window]) then set(r, field, nil) else set(r, field, A.plan[window]) end
    end
  end
  -- pool.ts recordUpstream: the upstream's count of what the key used, plus what was handed out
  -- while it was asked, becomes the key's count in each window it names.
  if pol.upstreamLimits and not isNull(A.used) then
    local spent = 0
    if not isNull(A.servedBefore) then spent = math.max(0, total(r) - A.servedBefore) end
    for _, kind in ipairs({ 'day', 'week', 'month' }) do
      if not isNull(A.used[kind]) then
        set(r, F[kind] .. 'S', B[kind][1]); set(r, F[kind] .. 'C', A.used[kind] + spent)
      end
    end
    if not isNull(A.used.total) then set(r, 't', A.used.total + spent) end
  end
  local events = {}
  local status, reason, untilMs, usable = place(r)
  -- A verdict repeated at every sync is news once.
  if hold and not usable and (priorS ~= hold.status or priorR ~= hold.reason) then events[#events + 1] = keyOut(r, status, reason, untilMs) end
  return { ok = true, revived = priorS ~= nil and hold == nil, events = events }
end

-- pool.ts recount: changes by A.delta the uses counted for A.keyId at a time whose window starts
-- are A.starts (per kind); only windows still current change, never below zero.
local function recount()
  local id = A.keyId
  if not redis.call('ZSCORE', P .. 'pos', id) then return { ok = false } end
  if not isNull(A.app) then
    local l = loadLedger(A.app)
    recountApp(l, A.delta, A.starts)
    saveLedger(l)
  end
  local r = load(id)
  for _, kind in ipairs(KINDS) do
    local start = A.starts[kind]
    if start == B[kind][1] then
      local held = 0
      if num(get(r, F[kind] .. 'S')) == start then held = num(get(r, F[kind] .. 'C')) or 0 end
      local nxt = math.max(0, held + A.delta)
      if nxt ~= held then
        set(r, F[kind] .. 'S', start); set(r, F[kind] .. 'C', nxt)
      end
    end
  end
  set(r, 't', math.max(0, total(r) + A.delta))
  if A.starts.minute == B.minute[1] then
    if num(meta.pwS) == A.starts.minute then setMeta('pwC', math.max(0, (num(meta.pwC) or 0) + A.delta)) end
    local counted = num(redis.call('HGET', P .. 'hist', A.starts.minute))
    if counted then
      redis.call('HSET', P .. 'hist', A.starts.minute, math.max(0, counted + A.delta))
    elseif A.delta > 0 then
      recordHandout(A.delta)
    end
  end
  place(r)
  return { ok = true }
end

-- pool.ts keyStatus: what a handout would see of each of A.keyIds (null: not in the pool); writes nothing.
local function keyStatus()
  local out = {}
  for i, id in ipairs(A.keyIds) do
    if redis.call('ZSCORE', P .. 'pos', id) then
      local r = load(id)
      settle(r)
      out[i] = { status = evaluate(r), total = total(r) }
    else
      out[i] = cjson.null
    end
  end
  return { ok = true, statuses = out }
end

-- pool.ts clearThrottle: an operator lifts the pool-wide throttle.
local function clearThrottle()
  local thU = num(meta.thU)
  setMeta('thU', nil); setMeta('thR', nil)
  redis.call('DEL', P .. 'r429')
  return { ok = true, inForce = thU ~= nil and now < thU }
end

-- A saved state written in as this pool's: A.meta, A.keys = {keyId = hash}, A.hist, A.apps = {app = hash}. Without
-- A.replace only into a pool Redis holds nothing of (the first start after the file backend).
local function replaceState()
  local held = redis.call('EXISTS', P .. 'meta') == 1 or redis.call('ZCARD', P .. 'pos') > 0
  if held and not A.replace then return { ok = false } end
  if held then
    for _, id in ipairs(redis.call('ZRANGE', P .. 'pos', 0, -1)) do redis.call('DEL', P .. 'k:' .. id) end
    redis.call('DEL', P .. 'meta', P .. 'pos', P .. 'av', P .. 'lru', P .. 'wk', P .. 'r429', P .. 'hist')
  end
  for _, app in ipairs(redis.call('SMEMBERS', P .. 'apps')) do redis.call('DEL', P .. 'a:' .. app) end
  redis.call('DEL', P .. 'apps')
  local function hset(key, map)
    local flat = {}
    for k, v in pairs(map) do flat[#flat + 1] = k; flat[#flat + 1] = v end
    if #flat > 0 then redis.call('HSET', key, unpack(flat)) end
  end
  hset(P .. 'meta', A.meta)
  hset(P .. 'hist', A.hist)
  for id, h in pairs(A.keys) do
    redis.call('DEL', P .. 'k:' .. id)
    hset(P .. 'k:' .. id, h)
  end
  for app, h in pairs(A.apps) do
    hset(P .. 'a:' .. app, h)
    redis.call('SADD', P .. 'apps', app)
  end
  return { ok = true }
end

local result
if op == 'handout' then result = handout()
elseif op == 'replaceState' then result = replaceState()
elseif op == 'clearThrottle' then result = clearThrottle()
elseif op == 'report' then result = report()
elseif op == 'setKeys' then result = setKeys()
elseif op == 'admin' then result = admin()
elseif op == 'recordUpstream' then result = recordUpstream()
elseif op == 'recount' then result = recount()
elseif op == 'keyStatus' then result = keyStatus()
elseif op == 'appUsage' then result = appUsage()
else return redis.error_reply('unknown op ' .. tostring(op)) end
return cjson.encode(result)
