// Package resq is a Resque-compatible background-job system: a Client that
// enqueues jobs, a Worker that runs registered handlers, and an Admin API for
// queues, failures, workers and stats. It speaks Ruby Resque 3's Redis
// protocol exactly, so Ruby producers and workers, resque-web and node-resque
// share one Redis with resq and see consistent state.
//
// # Quick start
//
//	conn, err := resq.Open(resq.ConnConfig{URL: "redis://127.0.0.1:6379/0"})
//	client, err := resq.NewClient(conn, resq.ClientConfig{})
//	_, err = client.Enqueue(ctx, "mail", "SendWelcome", Welcome{UserID: 42})
//
//	w, err := resq.NewWorker(conn, resq.WorkerConfig{Queues: []string{"mail", "*"}})
//	resq.Handle(w, "SendWelcome", func(ctx context.Context, a Welcome) error { … })
//	err = w.Run(ctx)
//
// # Concurrency
//
// Conn, Client, Worker and Admin are safe for concurrent use. A Worker runs
// Concurrency slots; each slot is one Resque worker (its own id in the
// workers set), so Ruby's and Node's tools show every running job. One
// fetcher pops jobs for all idle slots in one round trip; the pop and the
// slot's "working on" record are written in one atomic step. The acks of
// slots that finish together are written in one MULTI/EXEC that also fetches
// those slots' next jobs, so a busy worker makes one round trip per batch of
// jobs.
//
// Client.EnqueueBatch pushes many jobs in one pipelined round trip with every
// reply checked; concurrent Enqueue calls on one Client share pipelines too. An idle worker waits on its queues with a blocking pickup
// (BLMOVE into a per-process list in Redis), so new jobs start within
// milliseconds without polling.
//
// # Security
//
// Only classes registered with Handle, HandleFunc or HandleCommand ever run:
// a job naming any other class becomes a failure record and nothing is
// looked up by name. Jobs from Rails' ActiveJob (ActiveJobWrapperClass) run
// by their job_class under the same rule, with ActiveJob's serialized
// arguments decoded to plain JSON and nothing evaluated. Payloads are checked against size, depth and argument
// limits before they are decoded, duplicate keys are refused, and arguments
// are decoded strictly into the handler's declared type and validated. With
// a Keyring, jobs are signed (HMAC-SHA256 or Ed25519) and their arguments
// can be encrypted (AES-256-GCM); workers refuse unsigned, forged, altered
// or moved jobs. Secret fields (struct tag `resq:"secret"`, well-known names)
// are redacted wherever arguments are shown. A handler class can run in
// warm child processes under memory, CPU, process and file limits
// (HandlerOptions.Isolation = ChildProcess); a program that embeds a Worker
// with such handlers must reach Worker.Run with the same handlers registered,
// because the child re-executes it (InChildProcess reports child mode); a
// program that sets ChildLimits calls RunShimIfRequested first in main. Logs
// carry job id, class, queue, sizes and durations, never argument values.
// See docs/security.md.
package resq

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resq-go/resq/internal/wire"
)

// Defaults for ConnConfig.
const (
	DefaultRedisURL  = "redis://127.0.0.1:6379/0"
	DefaultNamespace = wire.DefaultNamespace
)

// ConnConfig configures a connection to Redis: one server, a Sentinel
// deployment or a Cluster, with or without TLS (docs/operations.md).
type ConnConfig struct {
	// URL is one of
	//
	//	redis://[user:password@]host:port/db         one server
	//	rediss://…                                   one server over TLS
	//	redis+sentinel://[user:password@]s1:26379,s2:26379/MASTER[/db][?sentinel_username=U&sentinel_password=P]
	//	redis+cluster://[user:password@]seed1:port,seed2:port
	//
	// (rediss+sentinel and rediss+cluster for TLS). The user and password
	// are the data nodes'; the sentinels' are separate. Default
	// DefaultRedisURL.
	URL string
	// Namespace prefixes every key, as Ruby's redis-namespace does. Default
	// "resque". On a Cluster it must carry a hash tag, e.g. "{resque}", so
	// that all its keys share one slot; Open refuses one without.
	Namespace string
	// TLS, when set, is used for every connection (data nodes and
	// sentinels), even with a redis:// URL: CA pool, client certificate,
	// server name, minimum version (TLSFiles.Config builds one from files).
	// An empty ServerName becomes the URL's first host. Default: TLS only
	// for rediss URLs, verified against the system's roots.
	TLS *tls.Config
	// Sentinel selects Redis Sentinel when MasterName is set (or the URL is
	// redis+sentinel://).
	Sentinel SentinelConfig
	// Cluster selects Redis Cluster when Addrs are set (or the URL is
	// redis+cluster://).
	Cluster ClusterConfig
	// PoolSize is the maximum number of connections. Default 64 (a Worker's
	// blocking pickups hold up to 16).
	// On a Cluster it is per node.
	PoolSize int
	// ReplicaAcks, when above 0, makes every enqueue (Enqueue, EnqueueBatch,
	// EnqueueAt/In, capped queues) wait until that many replicas confirm
	// it (Redis WAIT, pipelined behind the write on its connection) and
	// return an error wrapping ErrNotReplicated when they do not within
	// ReplicaAckTimeout. Redis replicates asynchronously, so without it an
	// enqueue the master acknowledged in the instant before a failover
	// can be lost (Sentinel's own failover opens such a window). An
	// unconfirmed enqueue is stored on the master and may still run;
	// retrying it may run the job twice. Workers' and the scheduler's
	// writes are not confirmed: losing one makes a job run again, never
	// vanish. Default 0; the URL parameter replica_acks=N sets it too.
	ReplicaAcks int
	// ReplicaAckTimeout bounds each confirmation. Default 1s; the URL
	// parameter replica_ack_timeout=500ms sets it too.
	ReplicaAckTimeout time.Duration
	// Logger receives connection-level messages. Default slog.Default().
	Logger *slog.Logger
}

// Conn is a Redis connection pool bound to one namespace, shared by Clients,
// Workers and Admins.
type Conn struct {
	rdb    redis.UniversalClient
	store  *wire.Store
	logger *slog.Logger
	desc   string
}

// Open validates cfg and prepares a connection pool. It does no I/O; use
// Ping to check that Redis answers.
func Open(cfg ConnConfig) (*Conn, error) {
	if cfg.URL == "" {
		cfg.URL = DefaultRedisURL
	}
	if cfg.Namespace == "" {
		cfg.Namespace = DefaultNamespace
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg, err := takeReplicaParams(cfg)
	if err != nil {
		return nil, err
	}
	rdb, desc, err := newUniversalClient(cfg)
	if err != nil {
		return nil, err
	}
	store := wire.NewStore(rdb, cfg.Namespace)
	store.SetReplicaAcks(cfg.ReplicaAcks, cfg.ReplicaAckTimeout)
	if cfg.ReplicaAcks > 0 {
		desc += fmt.Sprintf(" (enqueues confirmed by %d replica(s))", cfg.ReplicaAcks)
	}
	return &Conn{
		rdb:    rdb,
		store:  store,
		logger: cfg.Logger,
		desc:   desc,
	}, nil
}

// Ping checks that Redis answers.
func (c *Conn) Ping(ctx context.Context) error {
	if err := c.store.Ping(ctx); err != nil {
		return fmt.Errorf("redis %s: %w", c.desc, err)
	}
	return nil
}

// Namespace returns the key namespace.
func (c *Conn) Namespace() string { return c.store.Namespace() }

// String describes the connection without its password.
func (c *Conn) String() string { return c.desc }

// Close closes the pool.
func (c *Conn) Close() error { return c.rdb.Close() }

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
