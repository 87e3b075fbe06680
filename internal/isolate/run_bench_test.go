package isolate

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

// BenchmarkRun is one --exec job (/bin/true) through a Sandbox with its
// keeper, the way a worker runs it, from 10 goroutines at once (the
// worker's default concurrency); reports jobs/s.
func BenchmarkRun(b *testing.B) {
	for _, par := range []int{1, 10} {
		b.Run(fmt.Sprintf("goroutines=%d", par), func(b *testing.B) { benchRun(b, par) })
	}
}

func benchRun(b *testing.B, par int) {
	s := NewSandbox(Capabilities{})
	defer s.Close()
	ctx := context.Background()
	jobs := make(chan struct{}, b.N)
	for range b.N {
		jobs <- struct{}{}
	}
	close(jobs)
	b.ResetTimer()
	var wg sync.WaitGroup
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				if res, err := s.Run(ctx, Command{Path: "/bin/true", Stdin: []byte(`[1]`)}); err != nil || res.ExitCode != 0 {
					b.Error(res, err)
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}
