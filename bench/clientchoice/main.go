// Command clientchoice measures go-redis/v9 against rueidis on resq's
// fetch/ack loop, against a private redis-server it starts itself.
//
//	cd bench && go run ./clientchoice            # full run (100k jobs, 3 reps)
//	cd bench && go run ./clientchoice -quick     # 20k jobs, 1 rep
//
// Loop per job (namespace "resque", queue "q"):
//
//	FETCH: EVALSHA fetch.lua  KEYS=[resque:queue:q, resque:worker:<id>] ARGV=[run_at]
//	       (LPOP the queue; if a job came back, SET the worker key to the
//	       in-progress record; return the job)
//	ACK:   pipeline{ DEL resque:worker:<id>; INCRBY resque:stat:processed 1;
//	                 INCRBY resque:stat:processed:<id> 1 }
//
// Mode "single": C goroutines (slots) each run FETCH/ACK until FETCH is nil.
// Mode "batch":  one loop: one EVALSHA pops up to K=C jobs for the K slots
// (KEYS = queue + K worker keys) and returns them as an array; the acks of
// the whole batch go out as one pipeline; until the array is empty.
// Mode "enqueue": C producers push with checked single pushes (enqueue.go;
// `go run ./clientchoice -modes enqueue -concurrency 1,8`).
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
)

const (
	ns       = "resque"
	queueKey = ns + ":queue:q"
	statKey  = ns + ":stat:processed"
)

const fetchLua = `
local job = redis.call('LPOP', KEYS[1])
if job then
  redis.call('SET', KEYS[2], '{"queue":"q","run_at":"'..ARGV[1]..'","payload":'..job..'}')
end
return job
`

const fetchBatchLua = `
local out = {}
for i = 2, #KEYS do
  local job = redis.call('LPOP', KEYS[1])
  if not job then break end
  redis.call('SET', KEYS[i], '{"queue":"q","run_at":"'..ARGV[1]..'","payload":'..job..'}')
  out[#out+1] = job
end
return out
`

// ---------------------------------------------------------------------------
// A tiny neutral RESP helper (stdlib only) for setup and INFO, so neither
// client under test does untimed work that could warm it up or skew it.

type raw struct {
	c net.Conn
	r *bufio.Reader
	w *bufio.Writer
}

func dialRaw(addr string) (*raw, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil, err
	}
	return &raw{c: c, r: bufio.NewReaderSize(c, 1<<16), w: bufio.NewWriterSize(c, 1<<16)}, nil
}

func (r *raw) write(args ...string) {
	fmt.Fprintf(r.w, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(r.w, "$%d\r\n%s\r\n", len(a), a)
	}
}

// read returns a simple reply as a string (arrays are read and discarded).
func (r *raw) read() (string, error) {
	line, err := r.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", errors.New(line[1:])
	case '$':
		n, _ := strconv.Atoi(line[1:])
		if n < 0 {
			return "", nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r.r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		n, _ := strconv.Atoi(line[1:])
		for i := 0; i < n; i++ {
			if _, err := r.read(); err != nil {
				return "", err
			}
		}
		return "", nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}

func (r *raw) do(args ...string) (string, error) {
	r.write(args...)
	if err := r.w.Flush(); err != nil {
		return "", err
	}
	return r.read()
}

func (r *raw) redisCPU() float64 {
	s, err := r.do("INFO", "cpu")
	must(err)
	var total float64
	for _, l := range strings.Split(s, "\r\n") {
		k, v, ok := strings.Cut(l, ":")
		if ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
			f, err := strconv.ParseFloat(v, 64)
			must(err)
			total += f
		}
	}
	return total
}

func (r *raw) preload(n int) {
	must2(r.do("FLUSHALL"))
	const batch = 1000
	id := make([]byte, 8)
	for done := 0; done < n; {
		k := min(batch, n-done)
		for i := 0; i < k; i++ {
			_, _ = rand.Read(id)
			r.write("RPUSH", queueKey, `{"class":"Noop","args":[1,"x"],"id":"`+hex.EncodeToString(id)+`"}`)
		}
		must(r.w.Flush())
		for i := 0; i < k; i++ {
			must2(r.read())
		}
		done += k
	}
	l, err := r.do("LLEN", queueKey)
	must(err)
	if l != strconv.Itoa(n) {
		panic("preload: LLEN=" + l)
	}
}

// ---------------------------------------------------------------------------
// The two implementations of the loop.

type runner interface {
	warm(ctx context.Context, c int) error
	single(ctx context.Context, shaOne string, wid string) error // one slot until nil
	batch(ctx context.Context, shaBatch string, wids []string) error
	close()
}

func workerKey(id string) string  { return ns + ":worker:" + id }
func statKeyFor(id string) string { return statKey + ":" + id }
func runAt() string               { return time.Now().UTC().Format(time.RFC3339) }

// --- go-redis

type goRedis struct{ c *goredis.Client }

func newGoRedis(addr string, c int) runner {
	return &goRedis{c: goredis.NewClient(&goredis.Options{
		Addr:         addr,
		PoolSize:     c + 10,
		MinIdleConns: c,
	})}
}

func (g *goRedis) warm(ctx context.Context, c int) error {
	var wg sync.WaitGroup
	errs := make(chan error, c)
	for i := 0; i < c; i++ {
		wg.Go(func() { errs <- g.c.Ping(ctx).Err() })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (g *goRedis) single(ctx context.Context, sha, wid string) error {
	keys := []string{queueKey, workerKey(wid)}
	wk, sk := workerKey(wid), statKeyFor(wid)
	for {
		_, err := g.c.EvalSha(ctx, sha, keys, runAt()).Text()
		if err == goredis.Nil {
			return nil
		}
		if err != nil {
			return err
		}
		// the job would run here (Noop)
		_, err = g.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			p.Del(ctx, wk)
			p.IncrBy(ctx, statKey, 1)
			p.IncrBy(ctx, sk, 1)
			return nil
		})
		if err != nil {
			return err
		}
	}
}

func (g *goRedis) batch(ctx context.Context, sha string, wids []string) error {
	keys := []string{queueKey}
	wks := make([]string, len(wids))
	sks := make([]string, len(wids))
	for i, w := range wids {
		wks[i], sks[i] = workerKey(w), statKeyFor(w)
		keys = append(keys, wks[i])
	}
	for {
		jobs, err := g.c.EvalSha(ctx, sha, keys, runAt()).StringSlice()
		if err != nil {
			return err
		}
		if len(jobs) == 0 {
			return nil
		}
		_, err = g.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i := range jobs {
				p.Del(ctx, wks[i])
				p.IncrBy(ctx, statKey, 1)
				p.IncrBy(ctx, sks[i], 1)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
}

func (g *goRedis) close() { _ = g.c.Close() }

// --- rueidis

type rueidisR struct{ c rueidis.Client }

func newRueidis(addr string, _ int) runner {
	c, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress:           []string{addr},
		DisableCache:          true,
		DisableAutoPipelining: *rueidisNoAutoPipe,
	})
	must(err)
	return &rueidisR{c: c}
}

func (r *rueidisR) warm(ctx context.Context, c int) error {
	var wg sync.WaitGroup
	errs := make(chan error, c)
	for i := 0; i < c; i++ {
		wg.Go(func() { errs <- r.c.Do(ctx, r.c.B().Ping().Build()).Error() })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (r *rueidisR) single(ctx context.Context, sha, wid string) error {
	wk, sk := workerKey(wid), statKeyFor(wid)
	c := r.c
	for {
		_, err := c.Do(ctx, c.B().Evalsha().Sha1(sha).Numkeys(2).Key(queueKey, wk).Arg(runAt()).Build()).ToString()
		if rueidis.IsRedisNil(err) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, res := range c.DoMulti(ctx,
			c.B().Del().Key(wk).Build(),
			c.B().Incrby().Key(statKey).Increment(1).Build(),
			c.B().Incrby().Key(sk).Increment(1).Build(),
		) {
			if err := res.Error(); err != nil {
				return err
			}
		}
	}
}

func (r *rueidisR) batch(ctx context.Context, sha string, wids []string) error {
	c := r.c
	keys := []string{queueKey}
	wks := make([]string, len(wids))
	sks := make([]string, len(wids))
	for i, w := range wids {
		wks[i], sks[i] = workerKey(w), statKeyFor(w)
		keys = append(keys, wks[i])
	}
	cmds := make(rueidis.Commands, 0, 3*len(wids))
	for {
		jobs, err := c.Do(ctx, c.B().Evalsha().Sha1(sha).Numkeys(int64(len(keys))).Key(keys...).Arg(runAt()).Build()).AsStrSlice()
		if err != nil {
			return err
		}
		if len(jobs) == 0 {
			return nil
		}
		cmds = cmds[:0]
		for i := range jobs {
			cmds = append(cmds,
				c.B().Del().Key(wks[i]).Build(),
				c.B().Incrby().Key(statKey).Increment(1).Build(),
				c.B().Incrby().Key(sks[i]).Increment(1).Build(),
			)
		}
		for _, res := range c.DoMulti(ctx, cmds...) {
			if err := res.Error(); err != nil {
				return err
			}
		}
	}
}

func (r *rueidisR) close() { r.c.Close() }

// ---------------------------------------------------------------------------

type result struct {
	client, mode string
	conc, jobs   int
	rep          int
	jobsPerSec   float64
	cliCPUus     float64 // per job
	redisCPUus   float64 // per job
	allocs       float64 // per job
}

// window is the start of one measured run: what result's per-job figures
// are deltas of.
type window struct {
	ms    runtime.MemStats
	redis float64
	cpu   time.Duration
	t     time.Time
}

func startWindow(admin *raw) window {
	runtime.GC()
	var w window
	w.redis = admin.redisCPU()
	runtime.ReadMemStats(&w.ms)
	w.cpu = cpuSelf()
	w.t = time.Now()
	return w
}

// end measures the run that started at w.
func (w window) end(admin *raw, client, mode string, conc, jobs, rep int) result {
	el := time.Since(w.t)
	cpu := cpuSelf()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	redis := admin.redisCPU()
	fj := float64(jobs)
	return result{
		client: client, mode: mode, conc: conc, jobs: jobs, rep: rep,
		jobsPerSec: fj / el.Seconds(),
		cliCPUus:   float64((cpu - w.cpu).Microseconds()) / fj,
		redisCPUus: (redis - w.redis) * 1e6 / fj,
		allocs:     float64(ms.Mallocs-w.ms.Mallocs) / fj,
	}
}

func cpuSelf() time.Duration {
	var ru syscall.Rusage
	must(syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func runOnce(addr string, admin *raw, shaOne, shaBatch, client, mode string, conc, jobs, rep int) result {
	admin.preload(jobs)
	var r runner
	switch client {
	case "go-redis":
		r = newGoRedis(addr, conc)
	case "rueidis":
		r = newRueidis(addr, conc)
	}
	defer r.close()
	ctx := context.Background()
	must(r.warm(ctx, conc))

	host, _ := os.Hostname()
	wids := make([]string, conc)
	for i := range wids {
		wids[i] = fmt.Sprintf("%s:%d+%d:q", host, os.Getpid(), i)
	}

	win := startWindow(admin)

	var err error
	switch mode {
	case "single":
		var wg sync.WaitGroup
		errs := make([]error, conc)
		for i := 0; i < conc; i++ {
			wg.Go(func() { errs[i] = r.single(ctx, shaOne, wids[i]) })
		}
		wg.Wait()
		err = errors.Join(errs...)
	case "batch":
		err = r.batch(ctx, shaBatch, wids)
	}

	res := win.end(admin, client, mode, conc, jobs, rep)
	must(err)

	// Sanity: every job was acked exactly once and nothing is left in flight.
	p, e := admin.do("GET", statKey)
	must(e)
	if p != strconv.Itoa(jobs) {
		panic(fmt.Sprintf("%s/%s: processed=%s want %d", client, mode, p, jobs))
	}
	if n, _ := admin.do("EXISTS", queueKey); n != "0" {
		panic("queue not empty")
	}
	for _, w := range wids {
		if n, _ := admin.do("EXISTS", workerKey(w)); n != "0" {
			panic("worker key left: " + w)
		}
	}

	return res
}

func freePort() int {
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		must(err)
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if p != 6379 {
			return p
		}
	}
}

func startRedis() (addr string, stop func()) {
	port := freePort()
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1")
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	must(cmd.Start())
	stop = func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if r, err := dialRaw(addr); err == nil {
			s, err := r.do("PING")
			r.c.Close()
			if err == nil && s == "PONG" {
				return addr, stop
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	panic("redis-server did not answer PING on " + addr)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// spread is (max-min)/median in percent.
func spread(xs []float64) float64 {
	m := median(xs)
	if m == 0 || len(xs) < 2 {
		return 0
	}
	return (slices.Max(xs) - slices.Min(xs)) / m * 100
}

var (
	stopRedis         func()
	rueidisNoAutoPipe = flag.Bool("rueidis-no-autopipe", false,
		"side check only: set rueidis DisableAutoPipelining (default off = rueidis' normal auto-pipelining)")
)

func must(err error) {
	if err != nil {
		if stopRedis != nil {
			stopRedis()
		}
		panic(err)
	}
}

func must2[T any](_ T, err error) { must(err) }

func main() {
	jobs := flag.Int("jobs", 100000, "jobs per run")
	reps := flag.Int("reps", 3, "repetitions per configuration")
	concFlag := flag.String("concurrency", "10,50", "comma-separated slot counts")
	modesFlag := flag.String("modes", "single,batch", "comma-separated modes (single, batch, enqueue: see enqueue.go)")
	quick := flag.Bool("quick", false, "20000 jobs, 1 repetition")
	flag.Parse()
	if *quick {
		*jobs, *reps = 20000, 1
	}
	var concs []int
	for _, s := range strings.Split(*concFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		must(err)
		concs = append(concs, n)
	}
	modes := strings.Split(*modesFlag, ",")

	addr, stop := startRedis()
	stopRedis = stop
	defer stop()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() { <-sig; stop(); os.Exit(130) }()

	admin, err := dialRaw(addr)
	must(err)
	ver, _ := admin.do("INFO", "server")
	rv := "?"
	for _, l := range strings.Split(ver, "\r\n") {
		if v, ok := strings.CutPrefix(l, "redis_version:"); ok {
			rv = v
		}
	}
	shaOne, err := admin.do("SCRIPT", "LOAD", fetchLua)
	must(err)
	shaBatch, err := admin.do("SCRIPT", "LOAD", fetchBatchLua)
	must(err)
	shaPush, err := admin.do("SCRIPT", "LOAD", pushLua)
	must(err)

	fmt.Printf("redis-server %s on %s; %s %s/%s GOMAXPROCS=%d; jobs=%d reps=%d rueidis-no-autopipe=%v\n\n",
		rv, addr, runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), *jobs, *reps, *rueidisNoAutoPipe)

	type key struct {
		mode, client string
		conc         int
	}
	all := map[key][]result{}
	var order []key
	for _, mode := range modes {
		mode = strings.TrimSpace(mode)
		clients := []string{"go-redis", "rueidis"}
		if mode == "enqueue" {
			clients = enqueueClients
		}
		for _, c := range concs {
			for rep := 0; rep < *reps; rep++ {
				cl := slices.Clone(clients)
				if rep%2 == 1 {
					slices.Reverse(cl)
				}
				for _, client := range cl {
					var res result
					if mode == "enqueue" {
						res = runEnqueue(addr, admin, shaPush, client, c, *jobs, rep+1)
					} else {
						res = runOnce(addr, admin, shaOne, shaBatch, client, mode, c, *jobs, rep+1)
					}
					fmt.Printf("  %-6s C=%-3d rep %d %-8s %9.0f jobs/s  client %6.2f µs/job  redis %6.2f µs/job  %6.1f allocs/job\n",
						mode, c, rep+1, client, res.jobsPerSec, res.cliCPUus, res.redisCPUus, res.allocs)
					k := key{mode, client, c}
					if _, ok := all[k]; !ok {
						order = append(order, k)
					}
					all[k] = append(all[k], res)
				}
			}
		}
	}
	slices.SortStableFunc(order, func(a, b key) int {
		if a.mode != b.mode {
			return strings.Compare(b.mode, a.mode) // single before batch before enqueue
		}
		if a.conc != b.conc {
			return a.conc - b.conc
		}
		return strings.Compare(a.client, b.client)
	})

	fmt.Printf("\nmedians of %d run(s); spread = (max-min)/median of jobs/s\n\n", *reps)
	fmt.Println("| mode   |  C | client   |  jobs/s | jobs/s spread | client CPU µs/job | redis CPU µs/job | allocs/job |")
	fmt.Println("|--------|---:|----------|--------:|--------------:|------------------:|-----------------:|-----------:|")
	for _, k := range order {
		rs := all[k]
		pick := func(f func(result) float64) []float64 {
			out := make([]float64, len(rs))
			for i, r := range rs {
				out[i] = f(r)
			}
			return out
		}
		jps := pick(func(r result) float64 { return r.jobsPerSec })
		fmt.Printf("| %-6s | %2d | %-8s | %7.0f | %12.1f%% | %17.2f | %16.2f | %10.1f |\n",
			k.mode, k.conc, k.client, median(jps), spread(jps),
			median(pick(func(r result) float64 { return r.cliCPUus })),
			median(pick(func(r result) float64 { return r.redisCPUus })),
			median(pick(func(r result) float64 { return r.allocs })))
	}
}
