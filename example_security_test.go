package resq_test

import (
	"context"
	"fmt"
	"log"

	"github.com/resq-go/resq"
)

type Charge struct {
	Customer  int    `json:"customer"`
	CardToken string `json:"card_token" resq:"secret"`
}

// With a Keyring the Client signs every job and encrypts the args it is asked
// to; a Worker with the same keyring verifies and decrypts, and refuses jobs
// nobody with a signing key produced. The keyring file comes from
// `resq keys new --out FILE` (resq.LoadKeyring); here it is made in memory.
func ExampleKeyring() {
	ctx := context.Background()
	conn := exampleConn()
	defer conn.Close()
	file, err := resq.NewKeyringFile(resq.KeyHMAC)
	if err != nil {
		log.Fatal(err)
	}
	keyring, err := resq.ParseKeyring(file)
	if err != nil {
		log.Fatal(err)
	}
	signer, err := resq.NewClient(conn, resq.ClientConfig{Keyring: keyring})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := signer.EnqueueWith(ctx, resq.EnqueueParams{Queue: "billing", Class: "Charge",
		Args: []any{Charge{Customer: 7, CardToken: "tok_live_123"}}, Encrypt: true}); err != nil {
		log.Fatal(err)
	}
	intruder, err := resq.NewClient(conn, resq.ClientConfig{}) // no keys
	if err != nil {
		log.Fatal(err)
	}
	intruder.Enqueue(ctx, "billing", "Charge", Charge{Customer: 666, CardToken: "tok_stolen"})

	admin := resq.NewAdmin(conn)
	jobs, _ := admin.Peek(ctx, "billing", 0, 2)
	fmt.Println("first: signed", jobs[0].Signed, "encrypted", jobs[0].Encrypted)
	fmt.Println("second: signed", jobs[1].Signed)

	w, err := resq.NewWorker(conn, resq.WorkerConfig{Queues: []string{"billing"}, Concurrency: 1, Keyring: keyring})
	if err != nil {
		log.Fatal(err)
	}
	resq.Handle(w, "Charge", func(ctx context.Context, c Charge) error {
		fmt.Println("charge customer", c.Customer)
		return nil
	})
	runUntilProcessed(conn, w, 2)
	fs, _ := admin.Failures(ctx, 0, 10)
	for _, f := range fs {
		fmt.Println("refused:", f.Exception)
	}
	// Output:
	// first: signed true encrypted true
	// second: signed false
	// charge customer 7
	// refused: Resq::SignatureError
}
