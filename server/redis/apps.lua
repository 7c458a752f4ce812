-- Apps' budgets inside Redis: the mirror of server/pools/budgets.ts, name for name (the mirror
-- test checks), between store.lua and pool.lua in the one script. A ledger is the hash
-- P.."a:"..app: h (handouts), s (spent in all), ls (last seen), and per budget window its start
-- and count (dS/dC, wS/wC, oS/oC, the key hashes' codes); P.."apps" is the set of app names.
-- A budget comes in the op's arguments ({day=, week=, month=}, or null).

local BUDGET_WINDOWS = { 'day', 'week', 'month' }

local function loadLedger(app)
  local l = readRecord(P .. 'a:' .. app)
  l.app = app
  return l
end

local function saveLedger(l)
  if writeRecord(P .. 'a:' .. l.app, l) then redis.call('SADD', P .. 'apps', l.app) end
end

local function budgetOf(b, kind)
  if isNull(b) or isNull(b[kind]) then return nil end
  return b[kind]
end

-- budgets.ts spentIn: the app's count in the current window of `kind`
local function spentIn(l, kind)
  if num(get(l, F[kind] .. 'S')) == B[kind][1] then return num(get(l, F[kind] .. 'C')) or 0 end
  return 0
end

-- budgets.ts budgetHit: the window `want` more uses would pass (all or nothing), and when it resets
local function budgetHit(l, budget, want)
  local hit = nil
  for _, kind in ipairs(BUDGET_WINDOWS) do
    local limit = budgetOf(budget, kind)
    if limit and spentIn(l, kind) + want > limit then
      if hit == nil then hit = { window = kind, limit = limit, untilMs = B[kind][2] }
      else hit.untilMs = math.max(hit.untilMs, B[kind][2]) end
    end
  end
  return hit
end

-- budgets.ts budgetLeft: uses left in the tightest window (nil: no budget)
local function budgetLeft(l, budget)
  local left = nil
  for _, kind in ipairs(BUDGET_WINDOWS) do
    local limit = budgetOf(budget, kind)
    if limit then
      local x = math.max(0, limit - spentIn(l, kind))
      if left == nil or x < left then left = x end
    end
  end
  return left
end

-- budgets.ts chargeApp: a handout of `g` uses charged to the app
local function chargeApp(l, g)
  for _, kind in ipairs(BUDGET_WINDOWS) do
    local c = spentIn(l, kind)
    set(l, F[kind] .. 'S', B[kind][1]); set(l, F[kind] .. 'C', c + g)
  end
  set(l, 's', (num(get(l, 's')) or 0) + g)
  set(l, 'h', (num(get(l, 'h')) or 0) + 1)
  set(l, 'ls', now)
end

-- budgets.ts recountApp: uses made when the windows started at `starts` counted again by `delta`
local function recountApp(l, delta, starts)
  for _, kind in ipairs(BUDGET_WINDOWS) do
    if starts[kind] == B[kind][1] then
      local c = math.max(0, spentIn(l, kind) + delta)
      set(l, F[kind] .. 'S', B[kind][1]); set(l, F[kind] .. 'C', c)
    end
  end
  set(l, 's', math.max(0, (num(get(l, 's')) or 0) + delta))
end

-- budgets.ts usageOf, for every app that spent in the pool
local function appUsage()
  local out = {}
  for _, app in ipairs(redis.call('SMEMBERS', P .. 'apps')) do
    local l = loadLedger(app)
    -- as the in-memory pool: an app that never spent here (only given back) is not listed
    if (num(get(l, 'h')) or 0) > 0 or (num(get(l, 's')) or 0) > 0 then out[app] = {
      handouts = num(get(l, 'h')) or 0,
      credits = { day = spentIn(l, 'day'), week = spentIn(l, 'week'), month = spentIn(l, 'month'), total = num(get(l, 's')) or 0 },
      lastSeenAt = num(get(l, 'ls')) or cjson.null,
    } end
  end
  return { ok = true, usage = out }
end
