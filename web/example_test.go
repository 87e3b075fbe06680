package web_test

import (
	"context"
	"log"
	"net/http"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/web"
)

// Mount the dashboard under /resq in your own server.
func ExampleNew() {
	conn, err := resq.Open(resq.ConnConfig{URL: "redis://127.0.0.1:6379/0"})
	if err != nil {
		log.Fatal(err)
	}
	users, err := web.LoadUsers("users.htpasswd") // htpasswd -B -c users.htpasswd alice
	if err != nil {
		log.Fatal(err)
	}
	dash, err := web.New(conn, web.Config{Users: users, Prefix: "/resq"})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/resq/", http.StripPrefix("/resq", dash))
	log.Fatal(web.ListenAndServe(context.Background(), ":8080", mux))
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
