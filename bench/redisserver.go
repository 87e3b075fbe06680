package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// redisServer is the one private redis-server the whole comparison runs
// against: a free loopback port (never 6379), no persistence.
type redisServer struct {
	cmd  *exec.Cmd
	dir  string
	addr string
	log  bytes.Buffer
	done chan struct{}
}

// startRedis starts redis-server from PATH and waits until it answers PING.
func startRedis() (*redisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redis-server not found on PATH; install it (Debian: apt-get install -y redis-server): the bench needs a real Redis")
	}
	dir, err := os.MkdirTemp("", "resq-bench-redis-")
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			lastErr = err
			continue
		}
		s := &redisServer{dir: dir, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), done: make(chan struct{})}
		s.cmd = exec.Command(bin,
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no",
			"--dir", dir, "--daemonize", "no", "--logfile", "")
		s.cmd.Stdout, s.cmd.Stderr = &s.log, &s.log
		s.cmd.SysProcAttr = childProcAttr()
		if err := s.cmd.Start(); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("starting %s: %w", bin, err)
		}
		go func() { _ = s.cmd.Wait(); close(s.done) }()
		if lastErr = s.waitReady(); lastErr == nil {
			return s, nil
		}
		s.kill()
	}
	os.RemoveAll(dir)
	return nil, fmt.Errorf("redis-server did not start: %w", lastErr)
}

func (s *redisServer) waitReady() error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-s.done:
			return fmt.Errorf("redis-server on %s exited during start-up:\n%s", s.addr, s.log.String())
		default:
		}
		c, err := dialRESP(s.addr)
		if err == nil {
			var info string
			info, err = c.str("INFO", "server")
			c.close()
			if err == nil {
				if !strings.Contains(info, "process_id:"+strconv.Itoa(s.cmd.Process.Pid)+"\r\n") {
					return errors.New("another process answers on " + s.addr)
				}
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s not ready after 10 s: %v", s.addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *redisServer) kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

// stop kills the server and removes its directory.
func (s *redisServer) stop() {
	s.kill()
	os.RemoveAll(s.dir)
}

func freePort() (int, error) {
	for i := 0; i < 20; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if port != 6379 {
			return port, nil
		}
	}
	return 0, errors.New("no free port")
}

// resp is a minimal RESP2 client (standard library only) for the harness's
// own commands: FLUSHALL, INFO and the completion checks. It is not the client
// of any system under test, so it warms up none of them.
type resp struct {
	c net.Conn
	r *bufio.Reader
	w *bufio.Writer
}

func dialRESP(addr string) (*resp, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	return &resp{c: c, r: bufio.NewReader(c), w: bufio.NewWriter(c)}, nil
}

func (r *resp) close() { _ = r.c.Close() }

// do sends one command and returns its reply: string, int64, nil or []any.
func (r *resp) do(args ...string) (any, error) {
	_ = r.c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(r.w, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(r.w, "$%d\r\n%s\r\n", len(a), a)
	}
	if err := r.w.Flush(); err != nil {
		return nil, err
	}
	return r.read()
}

func (r *resp) read() (any, error) {
	line, err := r.r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("empty RESP line")
	}
	switch line[0] {
	case '+':
		return line[1:], nil
	case '-':
		return nil, errors.New("redis: " + line[1:])
	case ':':
		return strconv.ParseInt(line[1:], 10, 64)
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r.r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = r.read(); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("unexpected RESP line %q", line)
}

func (r *resp) str(args ...string) (string, error) {
	v, err := r.do(args...)
	if err != nil {
		return "", err
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case nil:
		return "", nil
	}
	return "", fmt.Errorf("%s: unexpected reply %T", args[0], v)
}

// int returns an integer reply, or a bulk string parsed as one (GET of a
// counter); a missing key is 0.
func (r *resp) int(args ...string) (int64, error) {
	s, err := r.str(args...)
	if err != nil || s == "" {
		return 0, err
	}
	return strconv.ParseInt(s, 10, 64)
}

// redisStats is what the bench reads from INFO: commands executed (including
// those a Lua script runs), read events (≈ round trips: one per batch of
// commands that arrives together) and CPU seconds used by the server.
type redisStats struct {
	Calls  int64
	Reads  int64
	CPUSec float64
}

// stats takes one snapshot (one INFO command, counted as one harness call).
func (r *resp) stats() (redisStats, error) {
	info, err := r.str("INFO", "commandstats", "cpu", "stats")
	if err != nil {
		return redisStats{}, err
	}
	var st redisStats
	for _, line := range strings.Split(info, "\r\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch {
		case strings.HasPrefix(k, "cmdstat_"):
			// calls=N,usec=…
			for _, f := range strings.Split(v, ",") {
				if n, ok := strings.CutPrefix(f, "calls="); ok {
					c, _ := strconv.ParseInt(n, 10, 64)
					st.Calls += c
				}
			}
		case k == "total_reads_processed":
			st.Reads, _ = strconv.ParseInt(v, 10, 64)
		case k == "used_cpu_user" || k == "used_cpu_sys":
			f, _ := strconv.ParseFloat(v, 64)
			st.CPUSec += f
		}
	}
	return st, nil
}

// childProcAttr makes a child die with the bench (Linux), so an interrupted
// run leaves no redis-server or measured process behind.
func childProcAttr() *syscall.SysProcAttr { return procAttr() }
