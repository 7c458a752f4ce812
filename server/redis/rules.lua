-- Keywarden's rules inside Redis: the mirror of server/pools/rules.ts, function for function and
-- name for name (test/server/redis/mirror.test.ts checks the names). This file runs first; pool.lua,
-- the operations, follows it in the same script.
--
-- Before it, each pool's script defines `C` (pools/policy.ts RULE_CONSTANTS) and `pol` (the pool's
-- policy) as Lua tables (redis/pool.ts poolScript): nothing of them is decoded on a run, and a
-- constant or policy changed is a script of its own.
--
-- KEYS[1]: the pool's key prefix, e.g. "keywarden:{plantid}:" (one hash slot per pool).
-- ARGV[1]: op; ARGV[2]: now (ms); ARGV[3..12]: the start and end of each window of KINDS, in order,
-- computed by the server for `now` (day, week and month in the pool's reset time zone); then the
-- op's arguments: for a handout positionally (ARGV[13..20]: want, block, rng, app or '', '1' when
-- the app has a budget, and its day, week, month or ''), for any other op as JSON in ARGV[13].

local P = KEYS[1]
local op = ARGV[1]
local now = tonumber(ARGV[2])
local KINDS = { 'minute', 'hour', 'day', 'month', 'week' }
local B = {}
for i, kind in ipairs(KINDS) do B[kind] = { tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i]) } end
local A
if op == 'handout' then
  local function opt(i)
    if ARGV[i] == '' then return nil end
    return tonumber(ARGV[i])
  end
  A = { want = tonumber(ARGV[13]), block = tonumber(ARGV[14]), rng = tonumber(ARGV[15]), app = cjson.null, budget = cjson.null }
  if ARGV[16] ~= '' then A.app = ARGV[16] end
  if ARGV[17] == '1' then A.budget = { day = opt(18), week = opt(19), month = opt(20) } end
else
  A = cjson.decode(ARGV[13])
end
local LIMIT_OF = { minute = 'perMinute', hour = 'perHour', day = 'perDay', month = 'perMonth', week = 'perWeek' }
-- hash fields of a window's start and count: mS/mC, hS/hC, dS/dC, oS/oC, wS/wC
local F = { minute = 'm', hour = 'h', day = 'd', month = 'o', week = 'w' }

local function isNull(v) return v == nil or v == cjson.null end

local function num(v)
  if v == nil or v == false then return nil end
  return tonumber(v)
end

-- A record is its key's hash as a string map with change tracking (pool.lua's load and save).
local function get(r, k) return r.f[k] end
local function set(r, k, v)
  if v ~= nil then v = tostring(v) end
  if r.f[k] ~= v then
    r.f[k] = v
    r.ch[k] = true
  end
end
local function total(r) return num(get(r, 't')) or 0 end

local function failuresOf(r)
  local out = {}
  local s = get(r, 'f')
  if s then for v in string.gmatch(s, '[^,]+') do out[#out + 1] = tonumber(v) end end
  return out
end
local function setFailures(r, list)
  if #list == 0 then set(r, 'f', nil) else set(r, 'f', table.concat(list, ',')) end
end

-- The pool's limits looked up once.
local function compileLimits(limits)
  local out = { total = nil, windows = {} }
  if not isNull(limits.total) then out.total = limits.total end
  for k, kind in ipairs(KINDS) do
    local l = limits[LIMIT_OF[kind]]
    if not isNull(l) then out.windows[#out.windows + 1] = { name = LIMIT_OF[kind], kind = kind, k = k, limit = l } end
  end
  return out
end
local LIMITS = compileLimits(pol.limits)

-- The limits a key is held to: the pool's, each window also capped by the key's plan as the last
-- sync told it (hash fields pD, pW, pO, pT) where the pool takes them from its upstream.
local function keyLimits(r)
  if not pol.upstreamLimits then return LIMITS end
  local plan = { perDay = num(get(r, 'pD')), perWeek = num(get(r, 'pW')), perMonth = num(get(r, 'pO')), total = num(get(r, 'pT')) }
  if plan.perDay == nil and plan.perWeek == nil and plan.perMonth == nil and plan.total == nil then return LIMITS end
  local merged = { total = LIMITS.total }
  for _, w in ipairs(LIMITS.windows) do merged[w.name] = w.limit end
  for name, l in pairs(plan) do
    if l >= 0 then
      l = math.floor(l)
      if merged[name] == nil or l < merged[name] then merged[name] = l end
    end
  end
  return compileLimits(merged)
end

local function backoffMs(level, maxBackoffMs)
  local ms = C.BASE_BACKOFF_MS * 2 ^ math.min(level, 30)
  if ms > maxBackoffMs then ms = maxBackoffMs end
  return ms
end

local function recentFailures(failures, nowMs, windowMs)
  local out = {}
  for _, t in ipairs(failures) do
    if t > nowMs - windowMs and t <= nowMs then out[#out + 1] = t end
  end
  return out
end

local function settle(r)
  local changed = false
  local bU = num(get(r, 'bU'))
  if bU and now >= bU then
    set(r, 'bU', nil); set(r, 'bR', nil); set(r, 'pr', 'ready')
    changed = true
  end
  local pr = get(r, 'pr')
  if pr and pr ~= 'ready' and now >= tonumber(pr) then
    set(r, 'pr', nil); set(r, 'bl', 0)
    changed = true
  end
  local eU = num(get(r, 'eU'))
  if eU and now >= eU then
    set(r, 'eU', nil); set(r, 'eR', nil)
    changed = true
  end
  local uU = num(get(r, 'uU'))
  if uU and now >= uU then
    set(r, 'uS', nil); set(r, 'uR', nil); set(r, 'uU', nil)
    changed = true
  end
  return changed
end

local function count(r, kind)
  if num(get(r, F[kind] .. 'S')) == B[kind][1] then return num(get(r, F[kind] .. 'C')) or 0 end
  return 0
end

-- reason, until (nil: the `total` limit, never; nil reason: no limit hit)
local function quotaHit(r)
  local LIMITS = keyLimits(r)
  local reason, untilMs = nil, 0
  if LIMITS.total and total(r) >= LIMITS.total then
    reason = 'quota: total ' .. total(r) .. '/' .. LIMITS.total
    untilMs = nil
  end
  for _, w in ipairs(LIMITS.windows) do
    local used = count(r, w.kind)
    if used >= w.limit then
      if reason == nil then reason = 'quota: ' .. w.name .. ' ' .. used .. '/' .. w.limit end
      if untilMs ~= nil and B[w.kind][2] > untilMs then untilMs = B[w.kind][2] end
    end
  end
  return reason, untilMs
end

local function limitsLeft(r)
  local LIMITS = keyLimits(r)
  local left = nil
  if LIMITS.total then left = LIMITS.total - total(r) end
  for _, w in ipairs(LIMITS.windows) do
    local v = w.limit - count(r, w.kind)
    if left == nil or v < left then left = v end
  end
  if left ~= nil and left < 0 then left = 0 end
  return left
end

-- status, reason, until (nil: none), usable
local function evaluate(r)
  if get(r, 'xR') then return 'disabled', get(r, 'xR'), nil, false end
  local exp = num(get(r, 'exp'))
  if exp and now >= exp then return 'expired', 'expired', nil, false end
  if get(r, 'uS') then return get(r, 'uS'), get(r, 'uR'), num(get(r, 'uU')), false end
  if get(r, 'bU') then return 'blocked', get(r, 'bR'), num(get(r, 'bU')), false end
  if get(r, 'eU') then return 'exhausted', get(r, 'eR'), num(get(r, 'eU')), false end
  local qr, qu = quotaHit(r)
  if qr then return 'exhausted', qr, qu, false end
  local pr = get(r, 'pr')
  if pr == 'ready' then return 'probing', 'probing after block', nil, true end
  if pr then return 'probing', 'probe in flight', tonumber(pr), false end
  return 'available', nil, nil, true
end

local function grant(want, left, capLeft, probing)
  local g = math.max(1, math.floor(want))
  if g > 1 then
    if left ~= nil and left < g then g = left end
    if capLeft ~= nil and capLeft < g then g = capLeft end
    if probing then g = 1 end
  end
  return g
end

-- rules.ts leaseSize: a lease's block, cut to a quarter of what the key and the budget have left
local function leaseSize(want, block, left, budgetLeft)
  local size = math.max(want, block)
  if left ~= nil then size = math.min(size, math.ceil(left / 4)) end
  if budgetLeft ~= nil then size = math.min(size, math.ceil(budgetLeft / 4)) end
  return math.max(want, size)
end

local function remainingAfter(left, isCurrent, servedInTurn)
  if pol.strategy ~= 'round-robin' or not isCurrent then return left end
  local turnLeft = math.max(0, pol.rotateEvery - servedInTurn)
  if left == nil or turnLeft < left then return turnLeft end
  return left
end

local function blockKey(r, forMs, reason, climb)
  set(r, 'pr', nil)
  set(r, 'bU', now + math.max(0, forMs))
  set(r, 'bR', reason)
  if climb then set(r, 'bl', (num(get(r, 'bl')) or 0) + 1) end
end

-- rep: { outcome, retryAfterMs, label, exhaustedUntil, invalidReason } (rules.ts readReport)
local function applyReport(r, rep)
  local maxBackoffMs = pol.maxBackoffSec * 1000
  local level = num(get(r, 'bl')) or 0
  local ra = rep.retryAfterMs
  if isNull(ra) then ra = nil end
  if rep.outcome == 'ok' then
    set(r, 'f', nil); set(r, 'bl', 0); set(r, 'pr', nil)
  elseif rep.outcome == 'rate_limited' then
    blockKey(r, ra or backoffMs(level, maxBackoffMs), rep.label, ra == nil)
  elseif rep.outcome == 'exhausted' then
    set(r, 'pr', nil)
    set(r, 'eU', rep.exhaustedUntil)
    if rep.label == 'reported exhausted' then set(r, 'eR', rep.label) else set(r, 'eR', rep.label .. ' (quota)') end
  elseif rep.outcome == 'invalid' then
    set(r, 'pr', nil)
    set(r, 'xR', rep.invalidReason)
    set(r, 'xL', get(r, 'lh') or '')
  elseif rep.outcome == 'error' then
    local pr = get(r, 'pr')
    if pr ~= nil and pr ~= 'ready' then
      blockKey(r, backoffMs(level, maxBackoffMs), rep.label .. ' while probing', true)
    else
      local failures = recentFailures(failuresOf(r), now, pol.failureWindowSec * 1000)
      failures[#failures + 1] = now
      if #failures >= pol.maxFailures then
        set(r, 'f', nil)
        blockKey(r, backoffMs(level, maxBackoffMs), #failures .. ' errors in ' .. pol.failureWindowSec .. 's (last: ' .. rep.label .. ')', true)
      else
        setFailures(r, failures)
      end
    end
  end
end

local function isCorrelated(recent, size)
  return recent >= 2 and recent * 2 > size
end

-- hold: { status, reason, until (or null) } (rules.ts upstreamHoldFor), or nil to lift it.
local function applyUpstream(r, hold)
  if hold then
    set(r, 'pr', nil)
    set(r, 'uS', hold.status); set(r, 'uR', hold.reason)
    if isNull(hold['until']) then set(r, 'uU', nil) else set(r, 'uU', hold['until']) end
  else
    set(r, 'uS', nil); set(r, 'uR', nil); set(r, 'uU', nil)
  end
end

-- The counters' part of reset is the caller's (pool.lua's admin), as in rules.ts.
local function applyAdmin(r, action, reason)
  if action == 'disable' then
    set(r, 'xR', reason or 'disabled'); set(r, 'xL', get(r, 'lh') or '')
  elseif action == 'enable' then
    for _, k in ipairs({ 'xR', 'xL', 'bU', 'bR', 'eU', 'eR', 'uS', 'uR', 'uU', 'pr', 'f' }) do set(r, k, nil) end
    set(r, 'bl', 0)
  elseif action == 'reset' then
    set(r, 't', 0); set(r, 'eU', nil); set(r, 'eR', nil)
  end
end
