-- jobstate.lua: the job transitions of common/jobstate.c, as one Redis
-- Functions library. The prelude (K: key names, STATES, T: the transition
-- table) is generated from C and placed above this text; do not repeat
-- either here. Every function takes the key prefix as keys[1].
--
-- A job record is JSON that starts '{"id":<id>,"state":"<state>",' (job.c
-- writes "id" then "state" first). These functions read the state from that
-- prefix and write it there, so no other code ever sets it.
--
-- Errors (the C side maps them): "STALE ..." the caller's lease token or
-- fence is not the job's any more; "REFUSED ..." the transition is not in
-- the table from the job's state (both named); "NOTLEADER ..." the caller
-- does not hold the leader lease; "GONE ..." no such live job.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function state_of(rec)
  if type(rec) ~= 'string' then return nil end
  return string.match(rec, '^{"id":%d+,"state":"([%a%-]+)",')
end

local function with_state(rec, st)
  local head, rest = string.match(rec, '^({"id":%d+,"state":")[%a%-]+(".*)$')
  if not head then return nil end
  return head .. st .. rest
end

-- Checks that transition name may start from state cur; returns the state
-- it ends in, or raises REFUSED naming both states.
local function check(name, cur)
  local t = T[name]
  local to = t.to or cur
  if not (t.from['*'] or t.from[cur or 'none']) then
    error('REFUSED transition ' .. name .. ' from ' .. tostring(cur) .. ' to ' .. tostring(to) ..
          ' is not allowed', 0)
  end
  return to
end

local function is_leader(P, token)
  return redis.call('GET', P .. K.leader) == token
end

local function need_leader(P, token)
  if not is_leader(P, token) then error('NOTLEADER this consumer does not hold the leader lease', 0) end
end

-- Whether token owns id's lease with this fence.
local function owns(P, id, token, fence)
  return redis.call('HGET', P .. K.lease_owner, id) == token and
         redis.call('HGET', P .. K.lease_fence, id) == fence
end

local function need_owner(P, id, token, fence)
  if not owns(P, id, token, fence) then
    error('STALE job ' .. id .. ': lease token or fence is not current', 0)
  end
end

local function clear_lease(P, id)
  redis.call('ZREM', P .. K.leases, id)
  redis.call('HDEL', P .. K.lease_owner, id)
  redis.call('HDEL', P .. K.lease_fence, id)
end

local function grant_lease(P, id, token, lease_ms)
  local fence = redis.call('INCR', P .. K.fence_seq)
  redis.call('ZADD', P .. K.leases, now_ms() + lease_ms, id)
  redis.call('HSET', P .. K.lease_owner, id, token)
  redis.call('HSET', P .. K.lease_fence, id, fence)
  return fence
end

local function live_record(P, id)
  local rec = redis.call('HGET', P .. K.jobs_live, id)
  if not rec then return nil end
  return rec
end

-- Moves a live record into the dead history and trims it to keep.
-- from_pending: the id may still be in queue:pending (an O(n) LREM there,
-- so only dead-letter asks for it).
local function to_dead(P, id, rec, keep, from_pending)
  redis.call('HDEL', P .. K.jobs_live, id)
  redis.call('ZREM', P .. K.jobs_live_ids, id)
  redis.call('HSET', P .. K.jobs_dead, id, rec)
  redis.call('ZADD', P .. K.jobs_dead_ids, id, id)
  redis.call('LREM', P .. K.queue_leased, 0, id)
  if from_pending then redis.call('LREM', P .. K.queue_pending, 0, id) end
  clear_lease(P, id)
  local n = redis.call('ZCARD', P .. K.jobs_dead_ids) - keep
  if n > 0 then
    for _, old in ipairs(redis.call('ZRANGE', P .. K.jobs_dead_ids, 0, n - 1)) do
      redis.call('HDEL', P .. K.jobs_dead, old)
    end
    redis.call('ZREMRANGEBYRANK', P .. K.jobs_dead_ids, 0, n - 1)
  end
end

-- add(record, ...): record starts '{"id":0,"state":"queued",'.
local function add(keys, args)
  local P = keys[1]
  local to = check('add', nil)
  local id = redis.call('INCR', P .. K.job_lastid)
  local rest = string.match(args[1], '^{"id":0(,"state":".*)$')
  if not rest then error('REFUSED add: record must start with {"id":0,"state":', 0) end
  local rec = with_state('{"id":' .. id .. rest, to)
  redis.call('HSET', P .. K.jobs_live, id, rec)
  redis.call('ZADD', P .. K.jobs_live_ids, id, id)
  redis.call('RPUSH', P .. K.queue_pending, id)
  redis.call('HINCRBY', P .. K.counters, 'job_requests', 1)
  return id
end

-- The live record of an id in queue:leased and its state, or nil and the
-- answer to give: {0, 'missing'} (no record: the id is dropped) or
-- {0, 'unreadable'} (the caller dead-letters it).
local function leased_record(P, id)
  local rec = live_record(P, id)
  if not rec then
    redis.call('LREM', P .. K.queue_leased, 0, id)
    clear_lease(P, id)
    return nil, {0, 'missing'}
  end
  local cur = state_of(rec)
  if not cur then return nil, {0, 'unreadable'} end
  return rec, cur
end

-- Grants a lease on a queued job whose id is in queue:leased. Returns
-- {1, fence, record}, or {0, why} with why 'missing' (no record: the id is
-- dropped) or 'unreadable' (the caller dead-letters it).
local function lease_common(P, name, id, token, lease_ms)
  local rec, cur = leased_record(P, id)
  if not rec then return cur end
  local to = check(name, cur)
  local fence = grant_lease(P, id, token, lease_ms)
  rec = with_state(rec, to)
  redis.call('HSET', P .. K.jobs_live, id, rec)
  return {1, fence, rec}
end

-- lease(id, token, lease_ms): the id was moved by BLMOVE to queue:leased.
local function lease(keys, args)
  local P, id, token, lease_ms = keys[1], args[1], args[2], tonumber(args[3])
  need_leader(P, token)
  if not redis.call('LPOS', P .. K.queue_leased, id) then return {0, 'not-leased'} end
  if redis.call('HGET', P .. K.lease_owner, id) then return {0, 'held'} end
  return lease_common(P, 'lease', id, token, lease_ms)
end

-- take(id, token, lease_ms): a queued job, out of queue:pending.
local function take(keys, args)
  local P, id, token, lease_ms = keys[1], args[1], args[2], tonumber(args[3])
  need_leader(P, token)
  local rec = live_record(P, id)
  if state_of(rec) ~= 'queued' then return {0, 'not-queued'} end
  if redis.call('LREM', P .. K.queue_pending, 1, id) == 0 then return {0, 'not-queued'} end
  redis.call('RPUSH', P .. K.queue_leased, id)
  return lease_common(P, 'take', id, token, lease_ms)
end

-- Writes an owned job's record through transition name; returns the record.
local function owned_write(P, name, id, token, fence, rec)
  need_owner(P, id, token, fence)
  local cur = state_of(live_record(P, id))
  if not cur then error('GONE job ' .. id .. ' is not live', 0) end
  local to = check(name, cur)
  local out = with_state(rec, to)
  if not out then error('REFUSED ' .. name .. ': malformed record', 0) end
  redis.call('HSET', P .. K.jobs_live, id, out)
  return out
end

-- start / save / finish (id, token, fence, record)
local function start(keys, args) owned_write(keys[1], 'start', args[1], args[2], args[3], args[4]) return 1 end
local function save(keys, args) owned_write(keys[1], 'save', args[1], args[2], args[3], args[4]) return 1 end
local function finish(keys, args) owned_write(keys[1], 'finish', args[1], args[2], args[3], args[4]) return 1 end

-- requeue(id, token, fence, record, count_retry '1'|'0')
local function requeue(keys, args)
  local P, id = keys[1], args[1]
  owned_write(P, 'requeue', id, args[2], args[3], args[4])
  redis.call('LREM', P .. K.queue_leased, 0, id)
  clear_lease(P, id)
  redis.call('LPUSH', P .. K.queue_pending, id)
  redis.call('DEL', P .. K.partial .. id)
  if args[5] == '1' then redis.call('HINCRBY', P .. K.counters, 'job_retries', 1) end
  return 1
end

-- done / cancelled (id, token, fence, record, keep, callback JSON or '',
-- counter names...)
local function ending(name, keys, args)
  local P, id = keys[1], args[1]
  local rec = owned_write(P, name, id, args[2], args[3], args[4])
  to_dead(P, id, rec, tonumber(args[5]), false)
  redis.call('DEL', P .. K.partial .. id)
  redis.call('SREM', P .. K.cancels, id)
  if args[6] ~= '' then
    redis.call('ZADD', P .. K.callbacks_due, now_ms(), args[6])
    redis.call('RPUSH', P .. K.callbacks_wake, id)
  end
  for i = 7, #args do redis.call('HINCRBY', P .. K.counters, args[i], 1) end
  return 1
end
local function done(keys, args) return ending('done', keys, args) end
local function cancelled(keys, args) return ending('cancelled', keys, args) end

-- renew(token, lease_ms, id1, fence1, id2, fence2, ...): extends the leases
-- this token still owns with the same fence; returns the ids it did not.
local function renew(keys, args)
  local P, token, lease_ms = keys[1], args[1], tonumber(args[2])
  local exp = now_ms() + lease_ms
  local lost = {}
  for i = 3, #args - 1, 2 do
    local id, fence = args[i], args[i + 1]
    if owns(P, id, token, fence) then
      redis.call('ZADD', P .. K.leases, 'XX', exp, id)
    else
      lost[#lost + 1] = id
    end
  end
  return lost
end

-- sweep(token, max): ids in queue:leased (at most max) whose lease lapsed
-- or never existed (the caller's own lapsed leases too: a lease whose grant
-- reply was lost is the caller's but held by no worker; the caller skips
-- the jobs it does hold).
local function sweep(keys, args)
  local P, max = keys[1], tonumber(args[2])
  local now = now_ms()
  local out = {}
  for _, id in ipairs(redis.call('LRANGE', P .. K.queue_leased, 0, max - 1)) do
    local owner = redis.call('HGET', P .. K.lease_owner, id)
    local exp = tonumber(redis.call('ZSCORE', P .. K.leases, id) or '0')
    if not owner or exp <= now then out[#out + 1] = id end
  end
  return out
end

-- adopt(id, token, lease_ms): takes over a job whose lease lapsed or never
-- existed. {1, fence, record} taken; {2, 'restored'} it was never leased
-- (back to the queue head); {0, why} with why 'held' (a valid lease),
-- 'missing' (dropped), 'unreadable' (dead-letter it).
local function adopt(keys, args)
  local P, id, token, lease_ms = keys[1], args[1], args[2], tonumber(args[3])
  need_leader(P, token)
  local owner = redis.call('HGET', P .. K.lease_owner, id)
  local exp = tonumber(redis.call('ZSCORE', P .. K.leases, id) or '0')
  if owner and exp > now_ms() then return {0, 'held'} end
  local rec, cur = leased_record(P, id)
  if not rec then return cur end
  if cur == 'queued' then
    check('restore', cur)
    redis.call('LREM', P .. K.queue_leased, 0, id)
    clear_lease(P, id)
    if not redis.call('LPOS', P .. K.queue_pending, id) then
      redis.call('LPUSH', P .. K.queue_pending, id)
    end
    return {2, 'restored'}
  end
  check('adopt', cur)
  local fence = grant_lease(P, id, token, lease_ms)
  return {1, fence, rec}
end

-- deadletter(id, token, reason, keep, ctime): sets an unreadable record aside.
local function deadletter(keys, args)
  local P, id, token, reason, keep = keys[1], args[1], args[2], args[3], tonumber(args[4])
  need_leader(P, token)
  if not string.match(id, '^%d+$') then error('REFUSED deadletter: bad id', 0) end
  local raw = live_record(P, id) or ''
  check('deadletter', state_of(raw))
  redis.call('HSET', P .. K.deadletter, id, raw)
  local line = args[5] .. '|Record unreadable, set aside in ' .. K.deadletter .. ': ' .. reason
  local key_id = string.match(raw, '"keyId":"([%w%-_]+)"')
  local rec = '{"id":' .. id .. ',"state":"dead-letter","name":"(unreadable record)",' ..
    '"assigned":false,"retries":0,"timeout":0,"outputFile":"","notifyURL":null,' ..
    '"maxOutputFileSize":0,"trace":[' .. cjson.encode(line) .. '],' ..
    '"vm":{"name":null,"image":"","vmms":"","cores":0,"memory":0,"id":null,' ..
    '"network":false,"resume":false,"disk":null},"input":[],' ..
    '"outcome":"Error: job record could not be read"' ..
    (key_id and (',"keyId":"' .. key_id .. '"') or '') .. '}'
  to_dead(P, id, rec, keep, true)
  return 1
end

-- leader(token, lease_ms): takes or renews the leader lease.
local function leader(keys, args)
  local P, token = keys[1], args[1]
  local v = redis.call('GET', P .. K.leader)
  if v == false then redis.call('SET', P .. K.leader, token, 'PX', args[2]) return 1 end
  if v == token then redis.call('PEXPIRE', P .. K.leader, args[2]) return 1 end
  return 0
end

local function leader_release(keys, args)
  local P, token = keys[1], args[1]
  if redis.call('GET', P .. K.leader) == token then return redis.call('DEL', P .. K.leader) end
  return 0
end

-- release(token, id1, fence1, ...): a draining consumer lets its leases
-- lapse at once so the successor adopts (and re-attaches to) those jobs.
local function release(keys, args)
  local P, token = keys[1], args[1]
  local n = 0
  for i = 2, #args - 1, 2 do
    local id, fence = args[i], args[i + 1]
    if owns(P, id, token, fence) then
      redis.call('ZADD', P .. K.leases, 'XX', 0, id)
      n = n + 1
    end
  end
  return n
end

-- callback_claim(hide_ms): the earliest due callback, hidden for hide_ms.
local function callback_claim(keys, args)
  local P = keys[1]
  local now = now_ms()
  local due = redis.call('ZRANGEBYSCORE', P .. K.callbacks_due, '-inf', now, 'LIMIT', 0, 1)
  if #due == 0 then return false end
  redis.call('ZADD', P .. K.callbacks_due, now + tonumber(args[1]), due[1])
  return due[1]
end

-- callback_retry(member, new member, delay_ms)
local function callback_retry(keys, args)
  local P = keys[1]
  redis.call('ZREM', P .. K.callbacks_due, args[1])
  redis.call('ZADD', P .. K.callbacks_due, now_ms() + tonumber(args[3]), args[2])
  return 1
end

local function now(keys, args) return now_ms() end

redis.register_function('tango_add', add)
redis.register_function('tango_lease', lease)
redis.register_function('tango_take', take)
redis.register_function('tango_start', start)
redis.register_function('tango_save', save)
redis.register_function('tango_finish', finish)
redis.register_function('tango_requeue', requeue)
redis.register_function('tango_done', done)
redis.register_function('tango_cancelled', cancelled)
redis.register_function('tango_renew', renew)
redis.register_function('tango_sweep', sweep)
redis.register_function('tango_adopt', adopt)
redis.register_function('tango_deadletter', deadletter)
redis.register_function('tango_leader', leader)
redis.register_function('tango_leader_release', leader_release)
redis.register_function('tango_release', release)
redis.register_function('tango_callback_claim', callback_claim)
redis.register_function('tango_callback_retry', callback_retry)
redis.register_function('tango_now', now)
