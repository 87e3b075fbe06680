package web_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/web"
)

// Mount the dashboard under /resq in your own server. Here the server is an
// httptest one on the test Redis; a program serves mux with
// web.ListenAndServe(ctx, ":8080", mux) and loads its accounts with
// web.LoadUsers("users.htpasswd") (made with: htpasswd -B -c users.htpasswd alice).
func ExampleNew() {
	conn, err := resq.Open(resq.ConnConfig{URL: exampleRedis.URL(), Namespace: "example-dashboard",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	hash, err := web.HashPassword("correct horse battery staple")
	if err != nil {
		log.Fatal(err)
	}
	var users web.Users
	if err := users.Add("alice", hash, web.RoleAdmin); err != nil {
		log.Fatal(err)
	}
	dash, err := web.New(conn, web.Config{Users: users, Prefix: "/resq", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/resq/", http.StripPrefix("/resq", dash))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	show := func(resp *http.Response, err error) {
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		fmt.Println(resp.StatusCode, resp.Header.Get("Location"))
	}
	show(browser.Get(srv.URL + "/resq/overview")) // not signed in
	form := url.Values{"username": {"alice"}, "password": {"correct horse battery staple"}, "next": {"/overview"}}
	req, _ := http.NewRequest("POST", srv.URL+"/resq/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", srv.URL)
	show(browser.Do(req))
	show(browser.Get(srv.URL + "/resq/overview"))
	// Output:
	// 303 /resq/login?next=%2Foverview
	// 303 /resq/overview
	// 200
}

// Feed the job-duration histogram from a worker and serve the metrics on
// their own listener.
func ExampleMetrics_ObserveJob() {
	conn, err := resq.Open(resq.ConnConfig{})
	if err != nil {
		log.Fatal(err)
	}
	metrics := web.NewMetrics(conn)
	w, err := resq.NewWorker(conn, resq.WorkerConfig{Queues: []string{"*"}, OnJobDoneFunc: metrics.ObserveJob})
	if err != nil {
		log.Fatal(err)
	}
	w.HandleFunc("Ping", func(ctx context.Context, job *resq.Job) error { return nil })
	ctx := context.Background()
	go func() { log.Fatal(web.ListenAndServe(ctx, "127.0.0.1:9478", metrics.Handler())) }()
	log.Fatal(w.Run(ctx))
}
