package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestRegister_TwiceAndAcrossRegistries is what a Caddy reload does: the
// same collectors go into a new registry, and may meet one that has them.
func TestRegister_TwiceAndAcrossRegistries(t *testing.T) {
	t.Parallel()
	s := New([]string{"expired", "missing"})
	first := prometheus.NewPedanticRegistry()
	if err := s.Register(first); err != nil {
		t.Fatal(err)
	}
	if err := s.Register(first); err != nil {
		t.Fatalf("second registration into one registry: %v", err)
	}
	if err := s.Register(nil); err != nil {
		t.Fatalf("nil registry: %v", err)
	}
	s.Rejections.WithLabelValues("expired").Inc()
	second := prometheus.NewPedanticRegistry()
	if err := s.Register(second); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(s.Rejections.WithLabelValues("expired")); got != 1 {
		t.Fatalf("counter after re-registration = %v, want 1", got)
	}
	// Every label starts at zero, so rate() alerts work from the first scrape.
	n, err := testutil.GatherAndCount(second, "caddy_tokengate_rejections_total", "caddy_tokengate_decisions_total")
	if err != nil || n != 2+len(Decisions) {
		t.Fatalf("gathered %d series (%v), want %d", n, err, 2+len(Decisions))
	}
	problems, err := testutil.GatherAndLint(second)
	if err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %+v", err, problems)
	}
}

// TestRegister_ConflictIsAnError: a different collector under one of our
// names is a real error, not something to hide.
func TestRegister_ConflictIsAnError(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "caddy_tokengate_weak_key", Help: "impostor"}))
	if err := New(nil).Register(reg); err == nil {
		t.Fatal("conflicting collector accepted")
	}
}
