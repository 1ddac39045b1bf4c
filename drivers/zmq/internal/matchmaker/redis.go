package matchmaker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchyard-mq/switchyard/internal/backoff"
)

// Redis is a matchmaker in a Redis server, shared by every process that
// uses the same server and key prefix. Its keys, under Prefix:
//
//	x          hash: exchange name → JSON Exchange
//	q          hash: queue name → JSON Queue
//	b          hash: JSON Binding → "1"
//	nodes      set of node IDs (an index; a member without its hash is dead)
//	n:<id>     hash: "node" → JSON Node, "c:<queue>\x00<id>" → JSON Consumer;
//	           its expiry is the node's TTL, refreshed by Heartbeat
//	v          counter bumped by every change
//	seen       hash: node ID → the value of v its local copy was last loaded at
//	           (one handle per node ID: two handles joined as one ID would
//	           overwrite each other's)
//
// and the pub/sub channel <Prefix>changes, on which every change is
// announced so that other processes reload at once rather than at their
// next periodic reload.
//
// Registry is served from a local copy, reloaded on every announced change
// and every reload interval (which also notices nodes whose TTL ran out);
// Refresh reads the server.
//
// A change returns once every live node has loaded it (each records in
// seen what it loaded), so that what a caller does next, in any process,
// happens against it: a consumer that Consume returned takes its share of
// messages published after, wherever they are published. A node that does
// not keep up is waited for at most one reload interval (capped at a
// second), and not at all by later changes until it catches up; the
// change is made either way.
type Redis struct {
	client *redis.Client
	prefix string
	logger *slog.Logger

	current atomic.Pointer[Registry]
	changes chan struct{}

	mu        sync.Mutex // serialises Refresh and guards the fields below
	remoteVer string     // value of the v key at the last reload
	liveKey   string     // live node IDs at the last reload
	localVer  uint64
	nodeIDs   []string // the nodes joined through this handle: their loads are recorded in seen

	maxAwait time.Duration // bound on waiting for other nodes to load a change
	lagMu    sync.Mutex
	laggards map[string]int64 // nodes that did not load a change within maxAwait: its version

	cancel context.CancelFunc
	done   chan struct{}
	pubsub *redis.PubSub
}

// NewRedis connects to the Redis server at url (redis://[user:pass@]host:port/db),
// loads the registry stored under prefix, and starts reloading it on every
// announced change and every reload interval, until Close.
func NewRedis(ctx context.Context, url, prefix string, reload time.Duration, logger *slog.Logger) (*Redis, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("matchmaker: redis URL: %w", err)
	}
	client := redis.NewClient(opts)
	r := &Redis{
		client: client, prefix: prefix, logger: logger, maxAwait: min(reload, time.Second), laggards: map[string]int64{},
		changes: make(chan struct{}, 1), done: make(chan struct{}),
	}
	if err := client.Ping(ctx).Err(); err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("matchmaker: redis at %s: %w", opts.Addr, err)
	}
	r.pubsub = client.Subscribe(ctx, prefix+"changes")
	if _, err := r.pubsub.Receive(ctx); err != nil { // the subscription's confirmation
		_ = r.pubsub.Close()
		_ = client.Close()
		return nil, fmt.Errorf("matchmaker: subscribe to %schanges: %w", prefix, err)
	}
	if _, err := r.Refresh(ctx); err != nil {
		_ = r.pubsub.Close()
		_ = client.Close()
		return nil, err
	}
	loopCtx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go r.watch(loopCtx, reload)
	return r, nil
}

// watch reloads on every announced change and every reload interval.
func (r *Redis) watch(ctx context.Context, reload time.Duration) {
	defer close(r.done)
	for ctx.Err() == nil {
		_, err := r.pubsub.ReceiveTimeout(ctx, reload)
		if ctx.Err() != nil {
			return
		}
		var netErr interface{ Timeout() bool }
		if err != nil && !(errors.As(err, &netErr) && netErr.Timeout()) {
			r.logger.WarnContext(ctx, "matchmaker: redis change notifications failed; reloading periodically", "err", err)
			timer := time.NewTimer(reload)
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
		}
		rctx, cancel := context.WithTimeout(ctx, reload+5*time.Second)
		if _, err := r.Refresh(rctx); err != nil && ctx.Err() == nil {
			r.logger.WarnContext(ctx, "matchmaker: redis reload failed", "err", err)
		}
		cancel()
	}
}

func (r *Redis) key(k string) string { return r.prefix + k }

func nodeKey(prefix, id string) string { return prefix + "n:" + id }

func consumerField(c Consumer) string { return fmt.Sprintf("c:%s\x00%d", c.Queue, c.ID) }

// changed bumps the version, announces the change, reloads the local copy
// and waits for the other live nodes to load it.
func (r *Redis) changed(ctx context.Context) error {
	pipe := r.client.Pipeline()
	version := pipe.Incr(ctx, r.key("v"))
	pipe.Publish(ctx, r.key("changes"), "")
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("matchmaker: redis: announce change: %w", err)
	}
	reg, err := r.Refresh(ctx)
	if err != nil {
		return err
	}
	r.awaitLoaded(ctx, version.Val(), reg.Nodes)
	return nil
}

// awaitLoaded waits until every node in nodes has loaded version v of the
// registry. A node that has not within maxAwait (slow, paused, or dead
// but not yet expired) is waited for no longer, and not at all by later
// changes until it has loaded the version it missed: one dying node must
// not hold up every declaration of the others. The change is made
// already, so nothing here fails it: if ctx ends or Redis fails, it stops
// waiting.
func (r *Redis) awaitLoaded(ctx context.Context, v int64, nodes map[string]Node) {
	ids := slices.Collect(maps.Keys(nodes))
	r.lagMu.Lock()
	for id := range r.laggards {
		if _, ok := nodes[id]; !ok {
			delete(r.laggards, id) // gone from the registry
		}
	}
	r.lagMu.Unlock()
	deadline := time.Now().Add(r.maxAwait)
	// Soon at first, as the nodes usually have loaded it, then every 20ms.
	poll := backoff.Backoff{Initial: time.Millisecond, Multiplier: 2, Max: 20 * time.Millisecond}
	for attempt := 0; len(ids) > 0; attempt++ {
		seen, err := r.client.HMGet(ctx, r.key("seen"), ids...).Result()
		if err != nil {
			r.logger.DebugContext(ctx, "matchmaker: redis: cannot tell which nodes loaded a change; not waiting for them", "version", v, "err", err)
			return
		}
		behind := ids[:0]
		r.lagMu.Lock()
		for i, s := range seen {
			id := ids[i]
			loaded, _ := s.(string)
			n, err := strconv.ParseInt(loaded, 10, 64)
			if err != nil {
				n = 0 // not recorded yet
			}
			if missed, lagging := r.laggards[id]; lagging {
				if n < missed {
					continue // still behind: not waited for
				}
				delete(r.laggards, id) // caught up: waited for again
			}
			if n < v {
				behind = append(behind, id)
			}
		}
		if len(behind) > 0 && time.Now().After(deadline) {
			for _, id := range behind {
				r.laggards[id] = v
			}
			r.logger.DebugContext(ctx, "matchmaker: redis: nodes did not load a change in time; not waiting for them until they do",
				"version", v, "nodes", behind, "waited", r.maxAwait)
			behind = nil
		}
		r.lagMu.Unlock()
		ids = behind
		if len(ids) == 0 {
			return
		}
		if poll.Wait(ctx, attempt) != nil {
			return
		}
	}
}

func wrapRedis(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("matchmaker: redis: %s: %w", what, err)
}

// Join implements Matchmaker.
func (r *Redis) Join(ctx context.Context, n Node, ttl time.Duration) error {
	data, _ := json.Marshal(n)
	pipe := r.client.TxPipeline()
	pipe.HSet(ctx, nodeKey(r.prefix, n.ID), "node", data)
	pipe.PExpire(ctx, nodeKey(r.prefix, n.ID), ttl)
	pipe.SAdd(ctx, r.key("nodes"), n.ID)
	if _, err := pipe.Exec(ctx); err != nil {
		return wrapRedis("join node "+n.ID, err)
	}
	r.mu.Lock()
	if !slices.Contains(r.nodeIDs, n.ID) {
		r.nodeIDs = append(r.nodeIDs, n.ID)
	}
	r.mu.Unlock()
	return r.changed(ctx)
}

// Heartbeat implements Matchmaker.
func (r *Redis) Heartbeat(ctx context.Context, nodeID string, ttl time.Duration) error {
	pipe := r.client.Pipeline()
	expire := pipe.PExpire(ctx, nodeKey(r.prefix, nodeID), ttl)
	// Back in the index, should a reload that found the node dead just
	// before it joined again have dropped it (an ID without its record is
	// dropped again by the next reload).
	pipe.SAdd(ctx, r.key("nodes"), nodeID)
	if _, err := pipe.Exec(ctx); err != nil {
		return wrapRedis("heartbeat of node "+nodeID, err)
	}
	if !expire.Val() {
		return fmt.Errorf("%w: %s", ErrExpired, nodeID)
	}
	return nil
}

// Leave implements Matchmaker.
func (r *Redis) Leave(ctx context.Context, nodeID string) error {
	// First, under the lock reloads hold, so that none records it in seen
	// after the deletion below.
	r.mu.Lock()
	r.nodeIDs = slices.DeleteFunc(r.nodeIDs, func(id string) bool { return id == nodeID })
	r.mu.Unlock()
	pipe := r.client.TxPipeline()
	pipe.Del(ctx, nodeKey(r.prefix, nodeID))
	pipe.SRem(ctx, r.key("nodes"), nodeID)
	pipe.HDel(ctx, r.key("seen"), nodeID)
	if _, err := pipe.Exec(ctx); err != nil {
		return wrapRedis("leave node "+nodeID, err)
	}
	queues, err := r.client.HGetAll(ctx, r.key("q")).Result()
	if err != nil {
		return wrapRedis("list queues", err)
	}
	for name, data := range queues {
		var q Queue
		if json.Unmarshal([]byte(data), &q) == nil && q.Exclusive && q.Owner == nodeID {
			if err := r.deleteQueue(ctx, name); err != nil {
				return err
			}
		}
	}
	return r.changed(ctx)
}

// DeclareExchange implements Matchmaker.
func (r *Redis) DeclareExchange(ctx context.Context, x Exchange) error {
	data, _ := json.Marshal(x)
	set, err := r.client.HSetNX(ctx, r.key("x"), x.Name, data).Result()
	if err != nil {
		return wrapRedis("declare exchange "+x.Name, err)
	}
	if set {
		return r.changed(ctx)
	}
	raw, err := r.client.HGet(ctx, r.key("x"), x.Name).Result()
	if err != nil {
		return wrapRedis("read exchange "+x.Name, err)
	}
	var cur Exchange
	if err := json.Unmarshal([]byte(raw), &cur); err != nil {
		return fmt.Errorf("matchmaker: redis: exchange %q record %q: %w", x.Name, raw, err)
	}
	return checkExchange(cur, x)
}

// DeleteExchange implements Matchmaker.
func (r *Redis) DeleteExchange(ctx context.Context, name string) error {
	n, err := r.client.HDel(ctx, r.key("x"), name).Result()
	if err != nil {
		return wrapRedis("delete exchange "+name, err)
	}
	if err := r.deleteBindings(ctx, func(b Binding) bool { return b.Exchange == name }); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	return r.changed(ctx)
}

func (r *Redis) deleteBindings(ctx context.Context, match func(Binding) bool) error {
	fields, err := r.client.HKeys(ctx, r.key("b")).Result()
	if err != nil {
		return wrapRedis("list bindings", err)
	}
	var drop []string
	for _, f := range fields {
		var b Binding
		if json.Unmarshal([]byte(f), &b) != nil || match(b) {
			drop = append(drop, f)
		}
	}
	if len(drop) == 0 {
		return nil
	}
	return wrapRedis("delete bindings", r.client.HDel(ctx, r.key("b"), drop...).Err())
}

// DeclareQueue implements Matchmaker.
func (r *Redis) DeclareQueue(ctx context.Context, q Queue) error {
	data, _ := json.Marshal(q)
	for range 3 { // a dead owner's exclusive queue is replaced, racing others
		set, err := r.client.HSetNX(ctx, r.key("q"), q.Name, data).Result()
		if err != nil {
			return wrapRedis("declare queue "+q.Name, err)
		}
		if set {
			return r.changed(ctx)
		}
		raw, err := r.client.HGet(ctx, r.key("q"), q.Name).Result()
		if errors.Is(err, redis.Nil) {
			continue // deleted meanwhile
		}
		if err != nil {
			return wrapRedis("read queue "+q.Name, err)
		}
		var cur Queue
		if err := json.Unmarshal([]byte(raw), &cur); err != nil {
			return fmt.Errorf("matchmaker: redis: queue %q record %q: %w", q.Name, raw, err)
		}
		live := true
		if cur.Exclusive {
			n, err := r.client.Exists(ctx, nodeKey(r.prefix, cur.Owner)).Result()
			if err != nil {
				return wrapRedis("check owner of queue "+q.Name, err)
			}
			live = n > 0
		}
		if cur.Exclusive && !live {
			if err := r.deleteQueue(ctx, q.Name); err != nil {
				return err
			}
			continue
		}
		return checkQueue(cur, q, live)
	}
	return fmt.Errorf("matchmaker: redis: declare queue %q: raced with deletions three times", q.Name)
}

func (r *Redis) deleteQueue(ctx context.Context, name string) error {
	if err := r.client.HDel(ctx, r.key("q"), name).Err(); err != nil {
		return wrapRedis("delete queue "+name, err)
	}
	return r.deleteBindings(ctx, func(b Binding) bool { return b.Queue == name })
}

// DeleteQueue implements Matchmaker. Consumer records of the queue stay in
// their nodes' hashes until their nodes remove them; snapshots hide them.
func (r *Redis) DeleteQueue(ctx context.Context, name string) error {
	exists, err := r.client.HExists(ctx, r.key("q"), name).Result()
	if err != nil {
		return wrapRedis("check queue "+name, err)
	}
	if !exists {
		return nil
	}
	if err := r.deleteQueue(ctx, name); err != nil {
		return err
	}
	return r.changed(ctx)
}

// Bind implements Matchmaker.
func (r *Redis) Bind(ctx context.Context, b Binding) error {
	pipe := r.client.Pipeline()
	x := pipe.HExists(ctx, r.key("x"), b.Exchange)
	q := pipe.HExists(ctx, r.key("q"), b.Queue)
	if _, err := pipe.Exec(ctx); err != nil {
		return wrapRedis("bind", err)
	}
	if !x.Val() {
		return errNoExchange(b.Exchange)
	}
	if !q.Val() {
		return errNoQueue(b.Queue)
	}
	data, _ := json.Marshal(b)
	set, err := r.client.HSetNX(ctx, r.key("b"), string(data), "1").Result()
	if err != nil {
		return wrapRedis("bind", err)
	}
	if !set {
		return nil
	}
	return r.changed(ctx)
}

// Unbind implements Matchmaker.
func (r *Redis) Unbind(ctx context.Context, b Binding) error {
	data, _ := json.Marshal(b)
	n, err := r.client.HDel(ctx, r.key("b"), string(data)).Result()
	if err != nil {
		return wrapRedis("unbind", err)
	}
	if n == 0 {
		return nil
	}
	return r.changed(ctx)
}

// AddConsumer implements Matchmaker.
func (r *Redis) AddConsumer(ctx context.Context, c Consumer) error {
	pipe := r.client.Pipeline()
	q := pipe.HExists(ctx, r.key("q"), c.Queue)
	n := pipe.Exists(ctx, nodeKey(r.prefix, c.Node))
	if _, err := pipe.Exec(ctx); err != nil {
		return wrapRedis("add consumer", err)
	}
	if !q.Val() {
		return errNoQueue(c.Queue)
	}
	if n.Val() == 0 {
		return fmt.Errorf("%w: %s", ErrExpired, c.Node)
	}
	data, _ := json.Marshal(c)
	if err := r.client.HSet(ctx, nodeKey(r.prefix, c.Node), consumerField(c), data).Err(); err != nil {
		return wrapRedis("add consumer", err)
	}
	return r.changed(ctx)
}

// RemoveConsumer implements Matchmaker.
func (r *Redis) RemoveConsumer(ctx context.Context, c Consumer) error {
	n, err := r.client.HDel(ctx, nodeKey(r.prefix, c.Node), consumerField(c)).Result()
	if err != nil {
		return wrapRedis("remove consumer", err)
	}
	if n == 0 {
		return nil
	}
	return r.changed(ctx)
}

// Registry implements Matchmaker from the local copy.
func (r *Redis) Registry(ctx context.Context) (*Registry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return r.current.Load(), nil
}

// Refresh implements Matchmaker: it reads every record and drops the
// index entries of dead nodes.
func (r *Redis) Refresh(ctx context.Context) (*Registry, error) {
	// Serialised, so that a slow reload never replaces a newer one.
	r.mu.Lock()
	defer r.mu.Unlock()
	recs, err := r.read(ctx)
	if err != nil {
		return nil, err
	}
	reg, live, dead := r.decode(recs)
	if len(dead) > 0 {
		pipe := r.client.Pipeline()
		pipe.SRem(ctx, r.key("nodes"), dead)
		pipe.HDel(ctx, r.key("seen"), dead...)
		if _, err := pipe.Exec(ctx); err != nil {
			r.logger.DebugContext(ctx, "matchmaker: redis: could not drop dead nodes from the index", "err", err)
		}
	}
	return r.install(ctx, reg, recs.version, strings.Join(live, ",")), nil
}

// redisRecords is the registry as stored: the raw records Refresh reads.
type redisRecords struct {
	version   string              // the v key; "" before the first change
	exchanges map[string]string   // name → JSON Exchange
	queues    map[string]string   // name → JSON Queue
	bindings  []string            // JSON Binding
	nodeIDs   []string            // the index, sorted
	nodes     []map[string]string // each indexed node's hash; empty for a dead one
}

// read fetches every record in two round trips: the declarations and the
// node index, then the indexed nodes' hashes.
func (r *Redis) read(ctx context.Context) (redisRecords, error) {
	pipe := r.client.Pipeline()
	v := pipe.Get(ctx, r.key("v"))
	xs := pipe.HGetAll(ctx, r.key("x"))
	qs := pipe.HGetAll(ctx, r.key("q"))
	bs := pipe.HKeys(ctx, r.key("b"))
	ids := pipe.SMembers(ctx, r.key("nodes"))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return redisRecords{}, wrapRedis("load registry", err)
	}
	recs := redisRecords{version: v.Val(), exchanges: xs.Val(), queues: qs.Val(), bindings: bs.Val(), nodeIDs: ids.Val()}
	slices.Sort(recs.nodeIDs)
	if len(recs.nodeIDs) == 0 {
		return recs, nil
	}
	pipe = r.client.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(recs.nodeIDs))
	for i, id := range recs.nodeIDs {
		cmds[i] = pipe.HGetAll(ctx, nodeKey(r.prefix, id))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return redisRecords{}, wrapRedis("load nodes", err)
	}
	recs.nodes = make([]map[string]string, len(cmds))
	for i, cmd := range cmds {
		recs.nodes[i] = cmd.Val()
	}
	return recs, nil
}

// decode builds a registry from the records, logging and skipping those
// that do not decode. It returns the IDs of the live nodes and of the
// dead ones (indexed, but their hash expired).
func (r *Redis) decode(recs redisRecords) (reg *Registry, live, dead []string) {
	reg = newRegistry(0)
	for name, data := range recs.exchanges {
		var x Exchange
		if err := json.Unmarshal([]byte(data), &x); err != nil {
			r.logger.WarnContext(context.Background(), "matchmaker: redis: bad exchange record ignored", "name", name, "err", err)
			continue
		}
		reg.Exchanges[name] = x
	}
	for name, data := range recs.queues {
		var q Queue
		if err := json.Unmarshal([]byte(data), &q); err != nil {
			r.logger.WarnContext(context.Background(), "matchmaker: redis: bad queue record ignored", "name", name, "err", err)
			continue
		}
		reg.Queues[name] = q
	}
	for _, f := range recs.bindings {
		var b Binding
		if err := json.Unmarshal([]byte(f), &b); err != nil {
			r.logger.WarnContext(context.Background(), "matchmaker: redis: bad binding record ignored", "record", f, "err", err)
			continue
		}
		reg.Bindings = append(reg.Bindings, b)
	}
	for i, id := range recs.nodeIDs {
		fields := recs.nodes[i]
		var n Node
		if raw, ok := fields["node"]; !ok || json.Unmarshal([]byte(raw), &n) != nil {
			dead = append(dead, id)
			continue
		}
		live = append(live, id)
		reg.Nodes[id] = n
		for f, data := range fields {
			if !strings.HasPrefix(f, "c:") {
				continue
			}
			var c Consumer
			if err := json.Unmarshal([]byte(data), &c); err != nil {
				r.logger.WarnContext(context.Background(), "matchmaker: redis: bad consumer record ignored", "node", id, "err", err)
				continue
			}
			reg.Consumers[c.Queue] = append(reg.Consumers[c.Queue], c)
		}
	}
	reg.finish()
	return reg, live, dead
}

// install makes reg the local copy unless nothing changed since the last
// reload (same version, same live nodes), in which case the current copy
// stays and is returned, and records in seen that this handle's nodes
// loaded version. Called with r.mu held.
func (r *Redis) install(ctx context.Context, reg *Registry, version, liveKey string) *Registry {
	if cur := r.current.Load(); cur != nil && version == r.remoteVer && liveKey == r.liveKey {
		return cur
	}
	r.remoteVer, r.liveKey = version, liveKey
	r.localVer++
	reg.Version = r.localVer
	r.current.Store(reg)
	signal(r.changes)
	// Recorded once stored: from now on this node routes by it.
	if len(r.nodeIDs) > 0 && version != "" {
		seen := make([]any, 0, 2*len(r.nodeIDs))
		for _, id := range r.nodeIDs {
			seen = append(seen, id, version)
		}
		if err := r.client.HSet(ctx, r.key("seen"), seen...).Err(); err != nil {
			r.logger.DebugContext(ctx, "matchmaker: redis: could not record the loaded version", "err", err)
		}
	}
	return reg
}

// Changes implements Matchmaker.
func (r *Redis) Changes() <-chan struct{} { return r.changes }

// Ping implements Matchmaker.
func (r *Redis) Ping(ctx context.Context) error {
	return wrapRedis("ping", r.client.Ping(ctx).Err())
}

// DeleteAll deletes every key under the prefix: a whole registry, for tests
// and for resetting a deployment. It never touches other keys.
func (r *Redis) DeleteAll(ctx context.Context) error {
	iter := r.client.Scan(ctx, 0, r.prefix+"*", 100).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return wrapRedis("scan keys", err)
	}
	if len(keys) == 0 {
		return nil
	}
	return wrapRedis("delete keys", r.client.Del(ctx, keys...).Err())
}

// Close stops the reloads and closes the connections.
func (r *Redis) Close() error {
	r.cancel()
	err := r.pubsub.Close()
	<-r.done
	return errors.Join(err, r.client.Close())
}
