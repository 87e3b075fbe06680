package main

import (
	"flag"
	"strings"

	"github.com/resq-go/resq"
)

// connFlags are the global flags that describe the Redis deployment beyond
// the URL: TLS files, Sentinel and Cluster. Each has an environment
// variable; the flag wins.
type connFlags struct {
	ca, cert, key, serverName, tlsMin string
	sentinelMaster, sentinelAddrs     string
	sentinelUser, sentinelPassword    string
	clusterAddrs                      string
}

// connEnv maps each connection flag to its environment variable.
var connEnv = []struct{ flag, env string }{
	{"redis-ca", "RESQ_REDIS_CA"},
	{"redis-cert", "RESQ_REDIS_CERT"},
	{"redis-key", "RESQ_REDIS_KEY"},
	{"redis-server-name", "RESQ_REDIS_SERVER_NAME"},
	{"redis-tls-min", "RESQ_REDIS_TLS_MIN"},
	{"sentinel-master", "RESQ_SENTINEL_MASTER"},
	{"sentinel-addrs", "RESQ_SENTINEL_ADDRS"},
	{"sentinel-username", "RESQ_SENTINEL_USERNAME"},
	{"sentinel-password", "RESQ_SENTINEL_PASSWORD"},
	{"cluster-addrs", "RESQ_CLUSTER_ADDRS"},
}

func (f *connFlags) field(name string) *string {
	switch name {
	case "redis-ca":
		return &f.ca
	case "redis-cert":
		return &f.cert
	case "redis-key":
		return &f.key
	case "redis-server-name":
		return &f.serverName
	case "redis-tls-min":
		return &f.tlsMin
	case "sentinel-master":
		return &f.sentinelMaster
	case "sentinel-addrs":
		return &f.sentinelAddrs
	case "sentinel-username":
		return &f.sentinelUser
	case "sentinel-password":
		return &f.sentinelPassword
	case "cluster-addrs":
		return &f.clusterAddrs
	}
	return nil
}

// init reads the environment; it reports whether any variable was set (a
// deployment was chosen).
func (f *connFlags) init(env map[string]string) (explicit bool) {
	for _, e := range connEnv {
		if v := env[e.env]; v != "" {
			*f.field(e.flag) = v
			explicit = true
		}
	}
	return explicit
}

var connUsage = map[string]string{
	"redis-ca":          "PEM `FILE` of the CA(s) that sign the Redis servers' certificates (a private CA)",
	"redis-cert":        "client certificate PEM `FILE`, for servers with tls-auth-clients (needs --redis-key)",
	"redis-key":         "client certificate key PEM `FILE`",
	"redis-server-name": "`NAME` the Redis server certificate must carry (default: the host dialled)",
	"redis-tls-min":     "minimum TLS `VERSION`: 1.2 or 1.3 (default 1.2)",
	"sentinel-master":   "Sentinel master `NAME`: connect through Redis Sentinel",
	"sentinel-addrs":    "comma-separated sentinel `ADDRS` host:port (default: the hosts of a redis+sentinel:// URL)",
	"sentinel-username": "`USER` for the sentinels (the data nodes' user is in the URL)",
	"sentinel-password": "`PASSWORD` for the sentinels; prefer the environment variable, which ps does not show",
	"cluster-addrs":     "comma-separated Redis Cluster seed `ADDRS` host:port: connect to a cluster (the namespace needs a hash tag, e.g. {resque})",
}

func (f *connFlags) register(fs *flag.FlagSet) {
	for _, e := range connEnv {
		if e.flag == "sentinel-password" {
			fs.Var((*secretValue)(f.field(e.flag)), e.flag, connUsage[e.flag]+" (env "+e.env+")")
			continue
		}
		fs.StringVar(f.field(e.flag), e.flag, *f.field(e.flag), connUsage[e.flag]+" (env "+e.env+")")
	}
}

// secretValue is a string flag whose String (shown as the default in help
// output) never reveals it.
type secretValue string

func (v *secretValue) String() string {
	if v == nil || *v == "" {
		return ""
	}
	return "xxxxx"
}

func (v *secretValue) Set(s string) error { *v = secretValue(s); return nil }

func isConnFlag(name string) bool {
	var f connFlags
	return f.field(name) != nil
}

// apply fills cfg's TLS, Sentinel and Cluster from the flags.
func (f *connFlags) apply(cfg *resq.ConnConfig) error {
	files := resq.TLSFiles{CAFile: f.ca, CertFile: f.cert, KeyFile: f.key, ServerName: f.serverName, MinVersion: f.tlsMin}
	if !files.IsZero() {
		tc, err := files.Config()
		if err != nil {
			return usagef("", "%v (flags --redis-ca, --redis-cert, --redis-key, --redis-server-name, --redis-tls-min)", err)
		}
		cfg.TLS = tc
	}
	cfg.Sentinel = resq.SentinelConfig{MasterName: f.sentinelMaster, Addrs: splitAddrs(f.sentinelAddrs),
		Username: f.sentinelUser, Password: f.sentinelPassword}
	cfg.Cluster = resq.ClusterConfig{Addrs: splitAddrs(f.clusterAddrs)}
	return nil
}

func splitAddrs(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}
