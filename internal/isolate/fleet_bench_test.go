package isolate

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
)

// BenchmarkChildFleet: callers goroutines share children warm children, one
// job at a time per child; reports jobs/s and the CPU per job of this
// process and the children together.
func BenchmarkChildFleet(b *testing.B) {
	for _, tc := range []struct{ children, callers int }{{10, 10}, {50, 50}, {2, 50}, {4, 50}} {
		b.Run(fmt.Sprintf("children=%d/callers=%d", tc.children, tc.callers), func(b *testing.B) {
			s := &Sandbox{}
			idle := make(chan *Child, tc.children)
			var all []*Child
			for range tc.children {
				ch, err := s.StartChild(ChildCommand{Args: []string{os.Args[0]}})
				if err != nil {
					b.Fatal(err)
				}
				all = append(all, ch)
				idle <- ch
			}
			defer func() {
				for _, ch := range all {
					ch.Close()
				}
			}()
			cpu := func() (d int64) {
				d = int64(SelfCPU())
				for _, ch := range all {
					c, _ := cpuTimeOf(ch.Pid())
					d += int64(c)
				}
				return d
			}
			ctx := context.Background()
			b.ResetTimer()
			c0 := cpu()
			var wg sync.WaitGroup
			jobs := make(chan struct{}, b.N)
			for range b.N {
				jobs <- struct{}{}
			}
			close(jobs)
			for range tc.callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range jobs {
						ch := <-idle
						req := &Request{Class: "echo", Queue: "q", Args: []byte(`[]`)}
						if _, err := ch.Call(ctx, req, 0, 0); err != nil {
							b.Error(err)
						}
						idle <- ch
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
			b.ReportMetric(float64(cpu()-c0)/1e3/float64(b.N), "cpu-µs/job")
		})
	}
}
