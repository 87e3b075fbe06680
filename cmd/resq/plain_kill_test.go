package main

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resq-go/resq/internal/testkit"
)

// A worker whose Redis user may not script, killed with SIGKILL while its
// acks hold jobs ahead in its pickup list, loses nothing: the next worker
// on this host returns the dead process's pickup list and in-flight records
// to the queue, and every job runs.
func TestSIGKILLWithoutLuaLosesNothing(t *testing.T) {
	t.Parallel()
	f := setup(t)
	user := "noscripts-" + f.ns
	f.srv.Do(t, "ACL", "SETUSER", user, "on", ">pw", "~*", "&*", "+@all", "-@scripting")
	t.Cleanup(func() { f.srv.Do(t, "ACL", "DELUSER", user) })
	f.env[0] = "REDIS_URL=" + strings.Replace(f.srv.URL(), "redis://", "redis://"+user+":pw@", 1)
	marks := t.TempDir()
	slow := script(t, t.TempDir(), "slow.sh", `sleep 0.02; touch "`+marks+`/done-$RESQ_JOB_ID"`)
	fast := script(t, t.TempDir(), "fast.sh", `touch "`+marks+`/done-$RESQ_JOB_ID"`)
	const jobs = 200
	for i := range jobs {
		f.ok("enqueue", "--queue", "q", "Job", fmt.Sprintf("[%d]", i))
	}
	done := func() int { m, _ := filepath.Glob(marks + "/done-*"); return len(m) }
	held := func() int {
		n := 0
		for _, k := range strings.Fields(f.srv.Do(t, "KEYS", f.key("resq:pickup:*"))) {
			c, _ := strconv.Atoi(f.srv.Do(t, "LLEN", k))
			n += c
		}
		return n
	}

	p := f.startBinary("work", "--queues", "q", "--concurrency", "4", "--exec", "Job="+slow)
	testkit.Eventually(t, "jobs running with jobs held ahead", func() bool { return done() >= 20 && held() > 0 })
	if err := p.Signal("KILL"); err != nil {
		t.Fatal(err)
	}
	p.Wait(10 * time.Second)
	if held() == 0 {
		t.Fatal("the killed worker held no job ahead: the test proved nothing")
	}

	p2 := f.startBinary("work", "--queues", "q", "--concurrency", "4", "--exec", "Job="+fast)
	testkit.Eventually(t, "every job done", func() bool { return done() == jobs })
	p2.Signal("QUIT")
	if code, err := p2.Wait(10 * time.Second); err != nil || code != 0 {
		out, errOut := p2.Output()
		t.Fatalf("QUIT: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	if n := f.srv.Do(t, "LLEN", f.key("queue:q")); n != "0" {
		t.Errorf("queue length %s after every job ran", n)
	}
	if n := held(); n != 0 {
		t.Errorf("%d jobs left in pickup lists", n)
	}
}
