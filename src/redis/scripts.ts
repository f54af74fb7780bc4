/**
 * The Lua scripts the shared policies run on the Redis server: each decides
 * atomically, and touches only keys of one member, which share a hash tag and so
 * one Redis Cluster slot. Every script first records this replica as alive in the
 * member's `replicas` set and answers how many replicas are alive.
 *
 * Common arguments: ARGV[1] the shared time in ms ('' = the server's clock),
 * ARGV[2] the replica id, ARGV[3] how long a replica counts as alive without a sync.
 * @internal
 */
import { Script } from './client.ts';

const PRESENCE = `
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local alive = tonumber(ARGV[3])
redis.call('ZADD', KEYS[2], now, ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - alive)
redis.call('PEXPIRE', KEYS[2], alive * 2)
local replicas = redis.call('ZCARD', KEYS[2])
`;

/**
 * A lease from the fleet's token bucket (KEYS[1], a hash: tokens, at).
 * ARGV[4] tokens per ms, ARGV[5] burst, ARGV[6] tokens wanted.
 * Returns { granted, replicas, ms until the bucket holds the tokens wanted }.
 */
export const LEASE = new Script(`${PRESENCE}
local perMs, burst, want = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if not tokens or not at then tokens, at = burst, now end
if now > at then
  tokens = math.min(burst, tokens + (now - at) * perMs)
  at = now
end
local granted = math.max(0, math.min(want, math.floor(tokens)))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'at', string.format('%.17g', at))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / perMs) + alive * 2)
return { granted, replicas, math.ceil(math.max(0, want - tokens) / perMs) }
`);

/**
 * A sync of the fleet's retry budget (KEYS[1], a hash of per-bucket counts: f:<bucket>
 * first attempts, r:<bucket> retries, reserved ones included).
 * ARGV[4] bucket length in ms, ARGV[5] buckets in the window, ARGV[6] first attempts to
 * add, ARGV[7] retries to add, ARGV[8] the bucket of the lease being handed back,
 * ARGV[9] its unused retries, ARGV[10] ratio, ARGV[11] the fleet's floor (retries per
 * window whatever the traffic), ARGV[12] retries wanted.
 * Returns { retries granted (reserved in the current bucket), replicas, the current
 * bucket, first attempts in the window, retries in the window }.
 */
export const BUDGET = new Script(`${PRESENCE}
local bucketMs, buckets = tonumber(ARGV[4]), tonumber(ARGV[5])
local firsts, retries = tonumber(ARGV[6]), tonumber(ARGV[7])
local leaseBucket, unused = tonumber(ARGV[8]), tonumber(ARGV[9])
local ratio, floor, want = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
local bucket = math.floor(now / bucketMs)
local oldest = bucket - buckets + 1
if firsts > 0 then redis.call('HINCRBY', KEYS[1], 'f:' .. bucket, firsts) end
if retries > 0 then redis.call('HINCRBY', KEYS[1], 'r:' .. bucket, retries) end
if unused > 0 and leaseBucket >= oldest then redis.call('HINCRBY', KEYS[1], 'r:' .. leaseBucket, -unused) end
local F, R = 0, 0
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  local b = tonumber(string.sub(fields[i], 3))
  if b < oldest then
    redis.call('HDEL', KEYS[1], fields[i])
  elseif string.sub(fields[i], 1, 1) == 'f' then
    F = F + tonumber(fields[i + 1])
  else
    R = R + tonumber(fields[i + 1])
  end
end
local spare = math.floor(ratio * F + floor - R + 1e-9)
local granted = 0
if spare > 0 and want > 0 then
  granted = math.min(want, spare, math.max(1, math.floor(spare / replicas)))
  redis.call('HINCRBY', KEYS[1], 'r:' .. bucket, granted)
  R = R + granted
end
redis.call('PEXPIRE', KEYS[1], bucketMs * buckets * 2)
return { granted, replicas, bucket, F, R }
`);

/**
 * A sync of the breaker hints (KEYS[1], a sorted set: replica id by when it last said
 * it sees the dependency failing). ARGV[4] 1 if this replica sees it failing, else 0;
 * ARGV[5] how long a hint lasts without being renewed, in ms.
 * Returns { replicas seeing the dependency fail, replicas alive }.
 */
export const HINTS = new Script(`${PRESENCE}
local failing, lasts = ARGV[4] == '1', tonumber(ARGV[5])
if failing then redis.call('ZADD', KEYS[1], now, ARGV[2]) else redis.call('ZREM', KEYS[1], ARGV[2]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - lasts)
redis.call('PEXPIRE', KEYS[1], lasts * 2)
return { redis.call('ZCARD', KEYS[1]), replicas }
`);
