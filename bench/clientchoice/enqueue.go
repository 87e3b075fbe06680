package main

// Mode "enqueue": N producer goroutines each push their share of jobs with
// checked single pushes (every push waits for its reply and returns its
// error), as resq's Client.Enqueue does: SADD resque:queues q, then RPUSH
// resque:queue:q <payload>. Clients:
//
//	go-redis         one pipeline {SADD, RPUSH} per push (resq's Store.Push
//	                 before issue 15)
//	go-redis-script  one EVALSHA per push (SADD and RPUSH in Lua)
//	go-redis-auto    go-redis v9.23's EXPERIMENTAL AutoPipeline(): the
//	                 same pipeline {SADD, RPUSH} per push through its
//	                 blocking autopipeliner, which batches concurrent callers
//	go-redis-group   resq's group commit: a push that finds fewer than
//	                 -group-writers flushes in flight writes alone; pushes
//	                 that arrive meanwhile wait and are written together, as
//	                 one pipeline {SADD, RPUSH with every waiting payload}
//	rueidis          one DoMulti(SADD, RPUSH) per push from every goroutine:
//	                 rueidis's automatic pipelining of concurrent callers

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
)

const (
	queuesKey = ns + ":queues"
	pushLua   = `redis.call('SADD', KEYS[1], ARGV[1])
return redis.call('RPUSH', KEYS[2], ARGV[2])`
)

var groupWriters = flag.Int("group-writers", 4, "enqueue mode, go-redis-group: flushes in flight")

var enqueueClients = []string{"go-redis", "go-redis-script", "go-redis-auto", "go-redis-group", "rueidis"}

// pushFunc is one checked push of one payload; safe for concurrent use.
type pushFunc func(ctx context.Context, payload string) error

func enqueuePusher(addr, client string, conc int, shaPush string) (push pushFunc, warm func(context.Context) error, closeFn func()) {
	switch client {
	case "rueidis":
		c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true, DisableAutoPipelining: *rueidisNoAutoPipe})
		must(err)
		push = func(ctx context.Context, p string) error {
			for _, r := range c.DoMulti(ctx, c.B().Sadd().Key(queuesKey).Member("q").Build(), c.B().Rpush().Key(queueKey).Element(p).Build()) {
				if err := r.Error(); err != nil {
					return err
				}
			}
			return nil
		}
		warm = func(ctx context.Context) error { return c.Do(ctx, c.B().Ping().Build()).Error() }
		return push, warm, c.Close
	}
	c := goredis.NewClient(&goredis.Options{Addr: addr, PoolSize: conc + 10, MinIdleConns: min(conc, *groupWriters)})
	pipelined := func(ctx context.Context, ps []string) error {
		args := make([]any, len(ps))
		for i, p := range ps {
			args[i] = p
		}
		cmds, err := c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			p.SAdd(ctx, queuesKey, "q")
			p.RPush(ctx, queueKey, args...)
			return nil
		})
		if err == nil && cmds[1].(*goredis.IntCmd).Val() < int64(len(ps)) {
			err = errors.New("RPUSH returned a short length")
		}
		return err
	}
	switch client {
	case "go-redis":
		push = func(ctx context.Context, p string) error { return pipelined(ctx, []string{p}) }
	case "go-redis-script":
		keys := []string{queuesKey, queueKey}
		push = func(ctx context.Context, p string) error { return c.EvalSha(ctx, shaPush, keys, "q", p).Err() }
	case "go-redis-auto":
		ap, err := c.AutoPipeline()
		must(err)
		push = func(ctx context.Context, p string) error {
			_, err := ap.Pipelined(ctx, func(pp goredis.Pipeliner) error {
				pp.SAdd(ctx, queuesKey, "q")
				pp.RPush(ctx, queueKey, p)
				return nil
			})
			return err
		}
	case "go-redis-group":
		g := &groupCommit{max: *groupWriters, flush: pipelined}
		push = g.push
	default:
		panic("unknown client " + client)
	}
	warm = func(ctx context.Context) error { return c.Ping(ctx).Err() }
	return push, warm, func() { _ = c.Close() }
}

// groupCommit is the shape of resq's pushGroup (pushgroup.go) without the
// take-back of a caller whose ctx ends: a push that finds fewer than max
// flushes in flight writes alone; later ones join the next batch, whose
// first waiter is told to write it when a flush ends.
type groupCommit struct {
	max   int
	flush func(ctx context.Context, payloads []string) error

	mu      sync.Mutex
	writing int
	next    *groupBatch
}

type groupBatch struct {
	payloads []string
	lead     chan struct{} // one member is told to write the batch
	done     chan struct{} // closed when written; err set
	err      error
}

func (g *groupCommit) push(ctx context.Context, p string) error {
	g.mu.Lock()
	if g.writing < g.max {
		g.writing++
		g.mu.Unlock()
		err := g.flush(ctx, []string{p})
		g.finish()
		return err
	}
	b := g.next
	if b == nil {
		b = &groupBatch{lead: make(chan struct{}, 1), done: make(chan struct{})}
		g.next = b
	}
	b.payloads = append(b.payloads, p)
	g.mu.Unlock()
	select {
	case <-b.done:
		return b.err
	case <-b.lead:
		b.err = g.flush(ctx, b.payloads)
		close(b.done)
		g.finish()
		return b.err
	}
}

// finish hands the waiting batch to one of its members, or frees the slot.
func (g *groupCommit) finish() {
	g.mu.Lock()
	if b := g.next; b != nil {
		g.next = nil
		g.mu.Unlock()
		b.lead <- struct{}{}
		return
	}
	g.writing--
	g.mu.Unlock()
}

func runEnqueue(addr string, admin *raw, shaPush, client string, conc, jobs, rep int) result {
	must2(admin.do("FLUSHALL"))
	push, warm, closeFn := enqueuePusher(addr, client, conc, shaPush)
	defer closeFn()
	ctx := context.Background()
	for range conc {
		must(warm(ctx))
	}
	win := startWindow(admin)

	var wg sync.WaitGroup
	errs := make([]error, conc)
	for i := range conc {
		n := jobs / conc
		if i < jobs%conc {
			n++
		}
		wg.Go(func() {
			for k := range n {
				p := `{"class":"Noop","args":[{"n":` + strconv.Itoa(k) + `,"t":` + strconv.FormatInt(time.Now().UnixMicro(), 10) + `}],"id":"0123456789abcdef` + strconv.Itoa(i) + `"}`
				if err := push(ctx, p); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	res := win.end(admin, client, "enqueue", conc, jobs, rep)
	must(errors.Join(errs...))
	if l, err := admin.do("LLEN", queueKey); err != nil || l != strconv.Itoa(jobs) {
		panic(fmt.Sprintf("%s/enqueue: LLEN=%s (%v), want %d", client, l, err, jobs))
	}
	return res
}
