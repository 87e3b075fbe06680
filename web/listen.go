package web

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// DefaultListen is the address `resq web` listens on by default.
const DefaultListen = "127.0.0.1:5678"

// CheckListen refuses to serve a dashboard without users on an address
// other people can reach: anyone there could retry, remove and clear jobs.
// Loopback addresses (127.0.0.0/8, ::1, "localhost") are allowed without
// users; an empty host, 0.0.0.0, :: and any other name or address need
// users.
func CheckListen(addr string, users Users) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %w (expected HOST:PORT, e.g. %s)", addr, err, DefaultListen)
	}
	if users.Len() > 0 || isLoopbackHost(host) {
		return nil
	}
	return fmt.Errorf("refusing to serve the dashboard on %s without users: anyone who can reach it could "+
		"retry, remove and clear jobs; give an htpasswd file of bcrypt entries (--users FILE, made with "+
		"htpasswd -B -c FILE NAME) or listen on a loopback address such as %s", addr, DefaultListen)
}

// isLoopbackHost reports whether host (no port) names only the local machine.
func isLoopbackHost(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if i := strings.IndexByte(host, '%'); i >= 0 { // zone: fe80::1%lo
		host = host[:i]
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Serve serves h on ln until ctx ends, then shuts down gracefully (up to
// 5 s for requests in flight). It sets the server timeouts a dashboard
// exposed to a network needs. It returns nil after a shutdown caused by ctx.
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-done; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// ListenAndServe listens on addr and calls Serve.
func ListenAndServe(ctx context.Context, addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("dashboard: %w", err)
	}
	return Serve(ctx, ln, h)
}
