// Command leasing-api runs the stand-in for the seed's leasing API.
//
//	JWT_SECRET=... [ACCESS_TTL=1h] [JOB_DURATION=30s] [ADDR=127.0.0.1:3000] leasing-api
package main

import (
	"log"
	"net/http"
	"os"
	"time"

	"github.com/tokengate/tokengate/examples/leasing-api/leasing"
)

func main() {
	cfg, err := leasing.ConfigFromEnv(os.Getenv)
	if err != nil {
		log.Fatalf("leasing-api: %v", err)
	}
	addr := os.Getenv("ADDR")
	if addr == "" {
		addr = "127.0.0.1:3000"
	}
	log.Printf("leasing-api: listening on %s (access tokens %s, jobs %s, OTP %s)", addr, cfg.AccessTTL, cfg.JobDuration, leasing.DemoOTP)
	srv := &http.Server{Addr: addr, Handler: leasing.New(cfg), ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
