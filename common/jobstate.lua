-- jobstate.lua: the job transitions of common/jobstate.c, as one Redis
-- Functions library. The prelude (K: key names, STATES, T: the transition
-- table, CLASSES: the priority classes in order, CLASS_OK: the same as a
-- set, DEFAULT_CLASS) is generated from C and placed above this text; do
-- not repeat any of it here. Every function takes the key prefix as keys[1].
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

-- ---- Fair share and priorities (docs/design.md "Fair share and priorities").
-- A queued job's id is in queue:c:<class>:<group> (FIFO); queue:ring:<class>
-- lists the groups of that class with queued jobs (group in the ring iff
-- its list is not empty, kept so by every step below); queue:sched holds
-- each live job's "<class>:<group>" and queue:since when it was queued in
-- its class. running:ids / running:count count the jobs leased, running or
-- finishing per "<class>:<group>" (the per-course cap).
local function split_cg(cg)
  if type(cg) ~= 'string' then return nil end
  return string.match(cg, '^(%a+):(.+)$')
end

local function qkey(P, c, g) return P .. K.queue_class .. c .. ':' .. g end
local function ring(P, c) return P .. K.queue_ring .. c end

local function wake(P)
  redis.call('LPUSH', P .. K.queue_wake, '1')
  redis.call('LTRIM', P .. K.queue_wake, 0, 0)
end

-- Puts id back near the head of list q, in id order among the first 16
-- entries (jobs requeued together stay FIFO: a requeued job is older than
-- those queued after it). O(1). Returns the list's length.
local function push_head(q, id)
  local n = tonumber(id)
  local head = redis.call('LRANGE', q, 0, 15)
  for i, other in ipairs(head) do
    if (tonumber(other) or 0) > n then
      if i == 1 then return redis.call('LPUSH', q, id) end
      return redis.call('LINSERT', q, 'BEFORE', other, id)
    end
  end
  if #head == 0 then return redis.call('LPUSH', q, id) end
  return redis.call('LINSERT', q, 'AFTER', head[#head], id)
end

-- Queues id in class c, group g: at the tail (add, migration, promotion)
-- or back at the head (requeue, restore); a group that had nothing queued
-- joins the ring at the same end.
local function enqueue(P, id, c, g, at_head)
  local q = qkey(P, c, g)
  local n
  if at_head then n = push_head(q, id) else n = redis.call('RPUSH', q, id) end
  if n == 1 then redis.call(at_head and 'LPUSH' or 'RPUSH', ring(P, c), g) end
  redis.call('HSET', P .. K.queue_sched, id, c .. ':' .. g)
  redis.call('HSET', P .. K.queue_since, id, now_ms())
  wake(P)
end

local function group_emptied(P, c, g)
  redis.call('LREM', ring(P, c), 0, g)
  redis.call('HDEL', P .. K.queue_deficit .. c, g)
end

-- Takes id out of its group queue wherever it is (O(group length)); the
-- number of entries removed.
local function unqueue(P, id)
  local c, g = split_cg(redis.call('HGET', P .. K.queue_sched, id))
  if not c then return 0 end
  local q = qkey(P, c, g)
  local n = redis.call('LREM', q, 0, id)
  if n > 0 and redis.call('LLEN', q) == 0 then group_emptied(P, c, g) end
  redis.call('HDEL', P .. K.queue_since, id)
  return n
end

-- Counts id in (by 1) or out of (by -1) running:count, at most once each.
local function count_running(P, id, by)
  local cg = redis.call('HGET', P .. K.queue_sched, id)
  if not cg then return end
  if by > 0 then
    if redis.call('SADD', P .. K.running_ids, id) == 1 then
      redis.call('HINCRBY', P .. K.running_count, cg, 1)
    end
  elseif redis.call('SREM', P .. K.running_ids, id) == 1 then
    if redis.call('HINCRBY', P .. K.running_count, cg, -1) <= 0 then
      redis.call('HDEL', P .. K.running_count, cg)
    end
  end
end

-- Jobs of group g leased, running or finishing, over every class.
local function group_running(P, g)
  local n = 0
  for _, c in ipairs(CLASSES) do
    n = n + tonumber(redis.call('HGET', P .. K.running_count, c .. ':' .. g) or '0')
  end
  return n
end

local function group_queued(P, g)
  local n = 0
  for _, c in ipairs(CLASSES) do n = n + redis.call('LLEN', qkey(P, c, g)) end
  return n
end

local function weight(P, g)
  local w = tonumber(redis.call('HGET', P .. K.queue_weights, g) or '1') or 1
  if w < 1 then w = 1 end
  return w
end

-- No starvation: the head of each normal and low group queued longer than
-- max_wait ms moves up one class, to the tail of its group there (so jobs
-- promoted one after another stay FIFO; a group new to that class joins its
-- ring at the tail). Its wait there starts anew, so each further class
-- costs another max_wait. One job per group per call: O(groups); the lease
-- function runs it at most once a second (queue:promote:at).
local function promote(P, max_wait)
  local limit = now_ms() - max_wait
  for i = 2, #CLASSES do
    local c, up = CLASSES[i], CLASSES[i - 1]
    for _, g in ipairs(redis.call('LRANGE', ring(P, c), 0, -1)) do
      local q = qkey(P, c, g)
      local id = redis.call('LINDEX', q, 0)
      local since = id and tonumber(redis.call('HGET', P .. K.queue_since, id) or '0') or 0
      if id and since > 0 and since <= limit then
        redis.call('LPOP', q)
        if redis.call('LLEN', q) == 0 then group_emptied(P, c, g) end
        enqueue(P, id, up, g, false)
        redis.call('HINCRBY', P .. K.counters, 'job_promotions', 1)
      end
    end
  end
end

-- Moves a live record into the dead history and trims it to keep.
-- from_queue: the id may still be queued (an O(group) LREM there, so only
-- dead-letter asks for it).
local function to_dead(P, id, rec, keep, from_queue)
  redis.call('HDEL', P .. K.jobs_live, id)
  redis.call('ZREM', P .. K.jobs_live_ids, id)
  redis.call('HSET', P .. K.jobs_dead, id, rec)
  redis.call('ZADD', P .. K.jobs_dead_ids, id, id)
  redis.call('LREM', P .. K.queue_leased, 0, id)
  if from_queue then
    unqueue(P, id)
    redis.call('LREM', P .. K.queue_pending, 0, id)
  end
  count_running(P, id, -1)
  redis.call('HDEL', P .. K.queue_sched, id)
  redis.call('HDEL', P .. K.queue_since, id)
  clear_lease(P, id)
  wake(P)
  local n = redis.call('ZCARD', P .. K.jobs_dead_ids) - keep
  if n > 0 then
    for _, old in ipairs(redis.call('ZRANGE', P .. K.jobs_dead_ids, 0, n - 1)) do
      redis.call('HDEL', P .. K.jobs_dead, old)
    end
    redis.call('ZREMRANGEBYRANK', P .. K.jobs_dead_ids, 0, n - 1)
  end
end

-- add(record, class, group, max_queued): record starts '{"id":0,"state":"queued",'.
-- {1, id} added; {0, message} the group has max_queued jobs queued.
local function add(keys, args)
  local P, c, g, cap = keys[1], args[2] or DEFAULT_CLASS, args[3] or 'all', tonumber(args[4] or '0')
  local to = check('add', nil)
  local rest = string.match(args[1], '^{"id":0(,"state":".*)$')
  if not rest then error('REFUSED add: record must start with {"id":0,"state":', 0) end
  if not CLASS_OK[c] or g == '' then
    error('REFUSED add: bad class or share group', 0)
  end
  if cap and cap > 0 and group_queued(P, g) >= cap then
    return {0, 'max_queued_per_course (' .. cap .. ') reached: ' .. g .. ' has ' .. cap ..
               ' jobs queued; try again later'}
  end
  local id = redis.call('INCR', P .. K.job_lastid)
  local rec = with_state('{"id":' .. id .. rest, to)
  redis.call('HSET', P .. K.jobs_live, id, rec)
  redis.call('ZADD', P .. K.jobs_live_ids, id, id)
  enqueue(P, id, c, g, false)
  redis.call('HINCRBY', P .. K.counters, 'job_requests', 1)
  return {1, id}
end

-- The live record of an id in queue:leased and its state, or nil and the
-- answer to give: {0, 'missing'} (no record: the id is dropped) or
-- {0, 'unreadable'} (the caller dead-letters it).
local function leased_record(P, id)
  local rec = live_record(P, id)
  if not rec then
    redis.call('LREM', P .. K.queue_leased, 0, id)
    clear_lease(P, id)
    redis.call('HDEL', P .. K.queue_sched, id)
    return nil, {0, 'missing'}
  end
  local cur = state_of(rec)
  if not cur then return nil, {0, 'unreadable', id} end
  return rec, cur
end

-- Grants a lease on a queued job whose id is in queue:leased and counts it
-- in running:count. Returns {1, fence, record, id}, or {0, why} with why
-- 'missing' (no record: the id is dropped) or 'unreadable' (the caller
-- dead-letters it).
local function lease_common(P, name, id, token, lease_ms)
  local rec, cur = leased_record(P, id)
  if not rec then return cur end
  local to = check(name, cur)
  local fence = grant_lease(P, id, token, lease_ms)
  count_running(P, id, 1)
  rec = with_state(rec, to)
  redis.call('HSET', P .. K.jobs_live, id, rec)
  return {1, fence, rec, id}
end

-- lease(token, lease_ms, max_running, max_wait_ms): the next job under the
-- scheduling rule, leased in the same step. Classes high, normal, low in
-- that order; inside a class deficit round-robin over the ring (weight from
-- queue:weights, default 1: plain round-robin), skipping groups that have
-- max_running (>0) jobs leased or running; FIFO within a group. At most
-- one visit per group: O(groups). {1, fence, record, id}, or {0, why}: why
-- 'paused' (control:paused is set), 'empty', 'capped' (only capped groups
-- have jobs), 'unreadable' (then the id: it is in queue:leased for the
-- caller to dead-letter).
local function lease(keys, args)
  local P, token, lease_ms = keys[1], args[1], tonumber(args[2])
  local cap, max_wait = tonumber(args[3] or '0'), tonumber(args[4] or '0')
  need_leader(P, token)
  if redis.call('EXISTS', P .. K.paused) == 1 then return {0, 'paused'} end
  -- the promotion scan is O(groups): at most once a second
  if max_wait > 0 and redis.call('SET', P .. K.queue_promote_at, '1', 'PX', 1000, 'NX') then
    promote(P, max_wait)
  end
  local capped = false
  for _, c in ipairs(CLASSES) do
    local r = ring(P, c)
    for _ = 1, redis.call('LLEN', r) do
      local g = redis.call('LINDEX', r, 0)
      if not g then break end
      if cap > 0 and group_running(P, g) >= cap then
        capped = true
        redis.call('LMOVE', r, r, 'LEFT', 'RIGHT')
      else
        local dk, q = P .. K.queue_deficit .. c, qkey(P, c, g)
        local d = tonumber(redis.call('HGET', dk, g) or '0') or 0
        if d < 1 then d = d + weight(P, g) end
        local id = redis.call('LPOP', q)
        d = d - 1
        if redis.call('LLEN', q) == 0 then
          group_emptied(P, c, g)
        else
          redis.call('HSET', dk, g, tostring(d))
          if d < 1 then redis.call('LMOVE', r, r, 'LEFT', 'RIGHT') end
        end
        if id then
          redis.call('HDEL', P .. K.queue_since, id)
          local rec = live_record(P, id)
          local cur = state_of(rec)
          if rec and (not cur or cur == 'queued') then
            redis.call('RPUSH', P .. K.queue_leased, id)
            return lease_common(P, 'lease', id, token, lease_ms)
          end
          -- no record (dropped) or a job that is not queued (a stray entry)
          if not rec then redis.call('HDEL', P .. K.queue_sched, id) end
        end
      end
    end
  end
  return {0, capped and 'capped' or 'empty'}
end

-- take(id, token, lease_ms): a queued job, out of its queue (to cancel it).
local function take(keys, args)
  local P, id, token, lease_ms = keys[1], args[1], args[2], tonumber(args[3])
  need_leader(P, token)
  local rec = live_record(P, id)
  if state_of(rec) ~= 'queued' then return {0, 'not-queued'} end
  if unqueue(P, id) == 0 and redis.call('LREM', P .. K.queue_pending, 1, id) == 0 then
    return {0, 'not-queued'}
  end
  redis.call('RPUSH', P .. K.queue_leased, id)
  return lease_common(P, 'take', id, token, lease_ms)
end

-- Back to the head of its group queue (or, for a job an older version
-- queued with no class yet, of the legacy queue the sweeper migrates).
local function requeue_head(P, id, maybe_queued)
  local c, g = split_cg(redis.call('HGET', P .. K.queue_sched, id))
  if c then
    if maybe_queued and redis.call('LPOS', qkey(P, c, g), id) then return end
    enqueue(P, id, c, g, true)
  elseif not redis.call('LPOS', P .. K.queue_pending, id) then
    redis.call('LPUSH', P .. K.queue_pending, id)
  end
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
  -- From finishing only when the new record names no accepted output (its
  -- file was found gone): an accepted grade is never thrown away.
  need_owner(P, id, args[2], args[3])
  if state_of(live_record(P, id)) == 'finishing' then
    local ok, rec = pcall(cjson.decode, args[4])
    if not ok or type(rec) ~= 'table' or rec.outputTemp ~= nil then
      error('REFUSED requeue from finishing: the record still names its accepted output', 0)
    end
  end
  owned_write(P, 'requeue', id, args[2], args[3], args[4])
  redis.call('LREM', P .. K.queue_leased, 0, id)
  clear_lease(P, id)
  count_running(P, id, -1)
  requeue_head(P, id, false)
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
    count_running(P, id, -1)
    requeue_head(P, id, true)
    return {2, 'restored'}
  end
  check('adopt', cur)
  local fence = grant_lease(P, id, token, lease_ms)
  count_running(P, id, 1)
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

-- migrate(token, id1, class1, group1, ...): drains the legacy queue:pending
-- (an older version's single FIFO, or a job it requeued) into the group
-- queues, in order from its head; the caller read the ids from the head
-- and worked out each one's class and group from its record (class ''
-- for a record it cannot read: it goes to queue:leased, where the sweep
-- dead-letters it). Stops at the first id that is no longer the head.
-- Returns how many ids left queue:pending.
local function migrate(keys, args)
  local P, token = keys[1], args[1]
  need_leader(P, token)
  local n = 0
  for i = 2, #args - 2, 3 do
    local id, c, g = args[i], args[i + 1], args[i + 2]
    if redis.call('LINDEX', P .. K.queue_pending, 0) ~= id then break end
    redis.call('LPOP', P .. K.queue_pending)
    local rec = live_record(P, id)
    local cur = state_of(rec)
    if rec and (not cur or not CLASS_OK[c] or g == '') then
      redis.call('RPUSH', P .. K.queue_leased, id)
    elseif cur == 'queued' then
      enqueue(P, id, c, g, false)
    end
    n = n + 1
  end
  return n
end

-- reconcile(): rebuilds running:ids and running:count from the lease state
-- (an id counts iff it is in queue:leased, its record is live and not
-- queued, and it has a class and group). Every transition keeps them exact
-- in the same atomic step, so this finds nothing unless something outside
-- the library changed the keys; returns the number of corrections.
local function reconcile(keys, args)
  local P = keys[1]
  local fixes, want, ids = 0, {}, {}
  for _, id in ipairs(redis.call('LRANGE', P .. K.queue_leased, 0, -1)) do
    local cur = state_of(live_record(P, id))
    local cg = redis.call('HGET', P .. K.queue_sched, id)
    if cg and cur and cur ~= 'queued' and not ids[id] then
      ids[id] = 1
      want[cg] = (want[cg] or 0) + 1
    end
  end
  for _, id in ipairs(redis.call('SMEMBERS', P .. K.running_ids)) do
    if ids[id] then
      ids[id] = 2
    else
      redis.call('SREM', P .. K.running_ids, id)
      fixes = fixes + 1
    end
  end
  for id, v in pairs(ids) do
    if v == 1 then
      redis.call('SADD', P .. K.running_ids, id)
      fixes = fixes + 1
    end
  end
  local have, seen = redis.call('HGETALL', P .. K.running_count), {}
  for i = 1, #have - 1, 2 do
    local cg, n = have[i], tonumber(have[i + 1])
    seen[cg] = true
    if want[cg] ~= n then
      fixes = fixes + 1
      if want[cg] then redis.call('HSET', P .. K.running_count, cg, want[cg])
      else redis.call('HDEL', P .. K.running_count, cg) end
    end
  end
  for cg, n in pairs(want) do
    if not seen[cg] then
      redis.call('HSET', P .. K.running_count, cg, n)
      fixes = fixes + 1
    end
  end
  return fixes
end

-- position(id): a queued job's 1-based place in dispatch order (0: not
-- queued). Every job queued in a higher class is ahead; in its own class,
-- round-robin from the ring's head: with its index i in its group (weight
-- w), it is served in round k = floor(i / w); each group h before it in the
-- ring serves min(len h, (k + 1) * w_h) jobs first, each after it
-- min(len h, k * w_h). Exact for weights 1 when no job arrives or is
-- capped meanwhile (docs/design.md).
local function position(keys, args)
  local P, id = keys[1], args[1]
  local c, g = split_cg(redis.call('HGET', P .. K.queue_sched, id))
  if not c then
    local p = redis.call('LPOS', P .. K.queue_pending, id)
    return p and p + 1 or 0
  end
  local idx = redis.call('LPOS', qkey(P, c, g), id)
  if not idx then return 0 end
  local ahead = idx
  for _, hc in ipairs(CLASSES) do
    if hc == c then break end
    for _, h in ipairs(redis.call('LRANGE', ring(P, hc), 0, -1)) do
      ahead = ahead + redis.call('LLEN', qkey(P, hc, h))
    end
  end
  local k = math.floor(idx / weight(P, g))
  local before = true
  for _, h in ipairs(redis.call('LRANGE', ring(P, c), 0, -1)) do
    if h == g then
      before = false
    else
      local served = math.floor((before and k + 1 or k) * weight(P, h))
      ahead = ahead + math.min(redis.call('LLEN', qkey(P, c, h)), served)
    end
  end
  return ahead + 1
end

-- queue_stats(): {class, group, queued, oldest_ms, running} for every
-- (class, group) with queued or running jobs; oldest_ms is when the head
-- of the group's queue was queued in its class (O(1) per group).
local function queue_stats(keys, args)
  local P = keys[1]
  local out, seen = {}, {}
  for _, c in ipairs(CLASSES) do
    for _, g in ipairs(redis.call('LRANGE', ring(P, c), 0, -1)) do
      local q = qkey(P, c, g)
      local head = redis.call('LINDEX', q, 0)
      local oldest = head and tonumber(redis.call('HGET', P .. K.queue_since, head) or '0') or 0
      local run = tonumber(redis.call('HGET', P .. K.running_count, c .. ':' .. g) or '0')
      out[#out + 1] = {c, g, redis.call('LLEN', q), oldest, run}
      seen[c .. ':' .. g] = true
    end
  end
  local rc = redis.call('HGETALL', P .. K.running_count)
  for i = 1, #rc - 1, 2 do
    local c, g = split_cg(rc[i])
    if c and not seen[rc[i]] and tonumber(rc[i + 1]) > 0 then
      out[#out + 1] = {c, g, 0, 0, tonumber(rc[i + 1])}
    end
  end
  return out
end

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
redis.register_function('tango_migrate', migrate)
redis.register_function('tango_reconcile', reconcile)
redis.register_function{function_name = 'tango_position', callback = position, flags = {'no-writes'}}
redis.register_function{function_name = 'tango_queue_stats', callback = queue_stats,
                        flags = {'no-writes'}}
