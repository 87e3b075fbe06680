package wire

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestHashTag(t *testing.T) {
	for ns, want := range map[string]string{
		"{resque}": "resque", "app:{jobs}": "jobs", "{a}{b}": "a", "x{y}z": "y",
		"resque": "", "{}": "", "{resque": "", "}{x": "", "a{}b}": "",
	} {
		got, ok := HashTag(ns)
		if got != want || ok != (want != "") {
			t.Errorf("HashTag(%q) = %q, %v; want %q", ns, got, ok, want)
		}
		if err := CheckClusterNamespace(ns); (err == nil) != ok {
			t.Errorf("CheckClusterNamespace(%q) = %v", ns, err)
		}
	}
	err := CheckClusterNamespace("resque")
	if !errors.Is(err, ErrNoHashTag) || !strings.Contains(err.Error(), `"{resque}"`) || !IsPermanent(err) {
		t.Errorf("no-tag error: %v", err)
	}
}

func TestIsPermanent(t *testing.T) {
	perm := []error{
		errors.New("WRONGPASS invalid username-password pair or user is disabled."),
		errors.New("NOAUTH Authentication required."),
		fmt.Errorf("redis x: %w", errors.New("NOPERM this user has no permissions to run the 'sadd' command")),
		errors.New("ERR AUTH <password> called without any password configured for the default user"),
		errors.New("CROSSSLOT Keys in request don't hash to the same slot"),
		errors.New("ERR DB index is out of range"),
		fmt.Errorf("dial: %w", x509.UnknownAuthorityError{}),
		errors.New("remote error: tls: certificate required"),
	}
	for _, err := range perm {
		if !IsPermanent(err) {
			t.Errorf("IsPermanent(%v) = false", err)
		}
	}
	transient := []error{
		nil,
		errors.New("dial tcp 127.0.0.1:1: connect: connection refused"),
		errors.New("LOADING Redis is loading the dataset in memory"),
		errors.New("READONLY You can't write against a read only replica."),
		errors.New("MASTERDOWN Link with MASTER is down"),
		errors.New("CLUSTERDOWN The cluster is down"),
		errors.New("i/o timeout"),
		errors.New("redis: all sentinels specified in configuration are unreachable"),
	}
	for _, err := range transient {
		if IsPermanent(err) {
			t.Errorf("IsPermanent(%v) = true", err)
		}
	}
}

func TestACLRulesPatterns(t *testing.T) {
	rules, err := ACLRules(RoleProducer, "app*[1]", false)
	if err != nil {
		t.Fatal(err)
	}
	j := strings.Join(rules, " ")
	if !strings.Contains(j, `~app\*\[1\]:queue:*`) || strings.Contains(j, "eval") || !strings.HasPrefix(j, "resetkeys resetchannels clearselectors -@all") {
		t.Errorf("rules = %s", j)
	}
	rules, _ = ACLRules(RoleScheduler, "{resque}", true)
	j = strings.Join(rules, " ")
	if !strings.Contains(j, "~{resque}:{resque}:*resque_scheduler_master_lock") || !strings.Contains(j, "~{resque}:delayed:*") || !strings.Contains(j, "+evalsha") {
		t.Errorf("scheduler rules = %s", j)
	}
	rules, _ = ACLRules(RoleViewer, "resque", true)
	j = strings.Join(rules, " ")
	if strings.Contains(j, "+set") || strings.Contains(j, "eval") || !strings.Contains(j, "%R~resque:*") {
		t.Errorf("viewer rules = %s", j)
	}
}
