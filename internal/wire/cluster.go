package wire

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Redis Cluster. Every key resq (and Ruby Resque) uses starts with the
// namespace, and every multi-key command, script and MULTI/EXEC names keys
// of one namespace only. A namespace with a hash tag ("{resque}") therefore
// puts all of them in one slot, and the cluster client routes each call to
// the master that owns it. Without a tag the keys spread over the cluster
// and the first multi-key step fails with CROSSSLOT (or, worse, a pipeline's
// SADD lands and its RPUSH does not), so NewStore's callers refuse it with
// CheckClusterNamespace.

// HashTag returns the hash tag Redis Cluster would use for every key under
// namespace ns: the text between the namespace's first "{" and the first "}"
// after it, when that text is not empty. ok is false when ns has none, in
// which case keys under ns hash by their full names.
func HashTag(ns string) (tag string, ok bool) {
	i := strings.IndexByte(ns, '{')
	if i < 0 {
		return "", false
	}
	j := strings.IndexByte(ns[i+1:], '}')
	if j <= 0 {
		return "", false
	}
	return ns[i+1 : i+1+j], true
}

// ErrNoHashTag is wrapped by CheckClusterNamespace's error.
var ErrNoHashTag = errors.New("namespace has no hash tag")

// CheckClusterNamespace returns an error unless every key under ns maps to
// one cluster slot.
func CheckClusterNamespace(ns string) error {
	if _, ok := HashTag(ns); ok {
		return nil
	}
	if ns == "" {
		ns = DefaultNamespace
	}
	return fmt.Errorf("%w: on Redis Cluster every key of a namespace must map to one slot, and %q spreads its keys over the cluster; "+
		"use a namespace with a hash tag, e.g. %q (Ruby Resque and node-resque sharing the queues must use the same namespace string)",
		ErrNoHashTag, ns, "{"+strings.Trim(ns, "{}")+"}")
}

// keyNode returns the client that holds the namespace's keys: the master
// owning the namespace's slot on a cluster, the Store's client otherwise.
// Keyless commands that must see the namespace (SCAN, INFO) go there; a
// cluster client would send them to a random node.
func (s *Store) keyNode(ctx context.Context) (redis.Cmdable, error) {
	cc, ok := s.rdb.(*redis.ClusterClient)
	if !ok {
		return s.rdb, nil
	}
	node, err := cc.MasterForKey(ctx, s.Keys.Queues())
	if err != nil {
		return nil, fmt.Errorf("finding the cluster node for namespace %q: %w", s.Namespace(), err)
	}
	return node, nil
}

// scan iterates the keys matching pattern on the node holding the
// namespace (see keyNode).
func (s *Store) scan(ctx context.Context, pattern string, count int64) (*redis.ScanIterator, error) {
	n, err := s.keyNode(ctx)
	if err != nil {
		return nil, err
	}
	return n.Scan(ctx, 0, pattern, count).Iterator(), nil
}
