package resq_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
)

// Pooled connections are not probed before use (plainDialer): a connection
// the server closed is found by the command that uses it, and that command
// is sent again on a new connection. After the server drops every client
// (CLIENT KILL, as an idle timeout or a proxy would), each of many
// concurrent enqueues succeeds and each job is stored exactly once.
func TestEnqueueAfterServerClosedConnections(t *testing.T) {
	t.Parallel()
	b := setupPrivate(t)
	ctx := context.Background()
	const producers = 8
	enqueueAll := func(round int) {
		var wg sync.WaitGroup
		errs := make(chan error, producers)
		for p := 0; p < producers; p++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := b.client.Enqueue(ctx, "q", "Job", round, p)
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("round %d: enqueue after the server closed its connections: %v", round, err)
			}
		}
	}
	enqueueAll(0) // fills the pool with open connections
	for round := 1; round <= 3; round++ {
		if n, _ := strconv.Atoi(b.srv.Do(t, "CLIENT", "KILL", "TYPE", "normal")); n == 0 {
			t.Fatal("CLIENT KILL closed no connection: the test proves nothing")
		}
		enqueueAll(round)
	}
	if n := b.srv.Do(t, "LLEN", b.key("queue:q")); n != strconv.Itoa(4*producers) {
		t.Fatalf("%s jobs stored, want %d (each exactly once)", n, 4*producers)
	}
}
