package resq_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/testkit"
)

// dropReplyProxy forwards connections to Redis; the first time a client
// sends an ack that fetches (a MULTI holding EVALSHA), it lets Redis run it
// but never passes the reply on and cuts the connection: the write landed,
// the worker cannot know.
type dropReplyProxy struct {
	ln      net.Listener
	target  string
	dropped atomic.Bool
	// isAck tells the write to drop (lower-cased): by default a MULTI
	// holding EVALSHA.
	isAck func(lc []byte) bool
}

// connThroughDropReplyProxy is a Conn on b's namespace whose connection to
// Redis goes through a proxy that drops one reply (see startDropReplyProxy).
func connThroughDropReplyProxy(t *testing.T, b *bundle) (*dropReplyProxy, *resq.Conn) {
	t.Helper()
	proxy := startDropReplyProxy(t, b.srv.Addr())
	url := strings.Replace(b.srv.URL(), b.srv.Addr(), proxy.ln.Addr().String(), 1)
	conn, err := resq.Open(resq.ConnConfig{URL: url, Namespace: b.ns, Logger: testkit.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return proxy, conn
}

func startDropReplyProxy(t *testing.T, target string) *dropReplyProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dropReplyProxy{ln: ln, target: target, isAck: func(lc []byte) bool {
		return bytes.Contains(lc, []byte("exec")) && bytes.Contains(lc, []byte("evalsha"))
	}}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *dropReplyProxy) serve(client net.Conn) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	var mute atomic.Bool
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := server.Read(buf)
			if n > 0 && !mute.Load() {
				if _, werr := client.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		client.Close()
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := client.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if p.isAck(bytes.ToLower(chunk)) && p.dropped.CompareAndSwap(false, true) {
				mute.Store(true)
				server.Write(chunk)
				time.Sleep(100 * time.Millisecond) // Redis runs it; the reply goes nowhere
				server.Close()
				client.Close()
				return
			}
			if _, werr := server.Write(chunk); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	server.Close()
	io.Copy(io.Discard, client)
}

// An ack whose MULTI landed but whose reply was lost is not written twice,
// and the jobs it fetched for its slots — now only in their records — still
// run: every job runs exactly once and is counted once.
func TestLostAckReplyLosesNothing(t *testing.T) {
	t.Parallel()
	b := setupPrivate(t)
	proxy, conn := connThroughDropReplyProxy(t, b)
	assertLostAckReplyLosesNothing(t, b, proxy, conn)
}

// The same without Lua: the lost reply is of an ack's MULTI that claimed
// held-ahead jobs into the slots' records (LREM, SET) and moved the next
// ones into the pickup list (LMOVE).
func TestLostAckReplyLosesNothingWithoutLua(t *testing.T) {
	t.Parallel()
	b := noScriptsBundle(t)
	proxy := startDropReplyProxy(t, b.srv.Addr())
	proxy.isAck = func(lc []byte) bool {
		return bytes.Contains(lc, []byte("exec")) && bytes.Contains(lc, []byte("incrby")) &&
			bytes.Contains(lc, []byte("lrem")) && bytes.Contains(lc, []byte("lmove"))
	}
	url := strings.Replace(b.srv.URL(), "redis://", "redis://worker:pw@", 1)
	url = strings.Replace(url, b.srv.Addr(), proxy.ln.Addr().String(), 1)
	conn, err := resq.Open(resq.ConnConfig{URL: url, Namespace: b.ns, Logger: testkit.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	assertLostAckReplyLosesNothing(t, b, proxy, conn)
	if keys := b.srv.Do(t, "KEYS", b.key("resq:pickup:*")); keys != "" {
		if n := b.srv.Do(t, "LLEN", keys); n != "0" {
			t.Errorf("pickup list %s holds %s jobs after every job ran", keys, n)
		}
	}
}

func assertLostAckReplyLosesNothing(t *testing.T, b *bundle, proxy *dropReplyProxy, conn *resq.Conn) {
	t.Helper()
	ctx := context.Background()
	const jobs = 60
	for i := range jobs {
		if _, err := b.client.Enqueue(ctx, "q", "Work", i); err != nil {
			t.Fatal(err)
		}
	}
	w, err := resq.NewWorker(conn, resq.WorkerConfig{Queues: []string{"q"}, Concurrency: 3, Logger: testkit.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	runs := handleCountingRuns(w)
	testkit.RunWorker(t, w)
	testkit.Eventually(t, "every job processed", func() bool {
		st, err := b.admin.Stats(ctx)
		return err == nil && st.Processed >= jobs && st.Working == 0 && st.Pending == 0
	})
	time.Sleep(100 * time.Millisecond) // a double count would show now
	if !proxy.dropped.Load() {
		t.Fatal("the proxy never dropped an ack reply: the test proved nothing")
	}
	var wrong []string
	for i := range jobs {
		if n := runs.of(i); n != 1 {
			wrong = append(wrong, fmt.Sprintf("job %d ran %d times", i, n))
		}
	}
	if len(wrong) > 0 {
		t.Fatal(strings.Join(wrong, "; "))
	}
	st, _ := b.admin.Stats(ctx)
	if st.Processed != jobs || st.StatFailed != 0 {
		t.Fatalf("processed %d, failed %d; want %d, 0", st.Processed, st.StatFailed, jobs)
	}
}
