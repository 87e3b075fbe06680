package wire_test

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/resq-go/resq/internal/redistest"
	"github.com/resq-go/resq/internal/testkit"
	"github.com/resq-go/resq/internal/wire"
)

// One redis-server per test binary; every test gets its own flushed database.
var pool = redistest.NewPool(redistest.Options{})

func TestMain(m *testing.M) {
	testkit.Main(m, pool.Close)
}

// W is the worker id used by the test vectors (docs/protocol.md §10).
const W = "web1:4242:file_serve,warm_cache"

// newStore returns a Store with namespace "resque" on a fresh database, and
// the server handle for raw assertions.
func newStore(t *testing.T) (*wire.Store, *redistest.Server) {
	t.Helper()
	return newStoreNS(t, "resque")
}

func newStoreNS(t *testing.T, ns string) (*wire.Store, *redistest.Server) {
	t.Helper()
	return storeOn(t, pool.Get(t), ns)
}

// newPrivateStore is newStore on a redis-server of the test's own, for tests
// that change server-wide state (SCRIPT FLUSH).
func newPrivateStore(t *testing.T) (*wire.Store, *redistest.Server) {
	t.Helper()
	return storeOn(t, redistest.Start(t), "resque")
}

func storeOn(t *testing.T, srv *redistest.Server, ns string) (*wire.Store, *redistest.Server) {
	t.Helper()
	return wire.NewStore(clientOf(t, srv), ns), srv
}

// clientOf returns a go-redis client of srv, closed when the test ends.
func clientOf(tb testing.TB, srv *redistest.Server) *redis.Client {
	tb.Helper()
	opt, err := redis.ParseURL(srv.URL())
	if err != nil {
		tb.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	tb.Cleanup(func() { rdb.Close() })
	return rdb
}

var bg = context.Background()

// maxPayload is the Fetch size limit used where size does not matter.
const maxPayload = 1 << 20

// rubyKeysScript lists every key except resq's own (under resque:resq:),
// sorted: the state Ruby's tools see.
const rubyKeysScript = `local out = {}
for _, k in ipairs(redis.call('KEYS', '*')) do
  if string.sub(k, 1, 12) ~= 'resque:resq:' then out[#out + 1] = k end
end
table.sort(out)
return out`

// expect compares a redistest.Do reply with want.
func expect(t *testing.T, srv *redistest.Server, want string, args ...string) {
	t.Helper()
	if got := srv.Do(t, args...); got != want {
		t.Errorf("%s:\n got %q\nwant %q", strings.Join(args, " "), got, want)
	}
}
