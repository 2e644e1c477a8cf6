package caddy

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

var update = flag.Bool("update", false, "rewrite the adapt goldens in testdata")

// TestAdapt_Goldens adapts each Caddyfile and compares the JSON with its
// golden: the root Caddyfile (the seed scenario) and the examples.
func TestAdapt_Goldens(t *testing.T) {
	for _, tc := range []struct{ src, golden string }{
		{"../Caddyfile", "testdata/Caddyfile.golden.json"},
	} {
		src, err := os.ReadFile(tc.src)
		if err != nil {
			t.Fatal(err)
		}
		out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(src, map[string]any{"filename": tc.src})
		if err != nil {
			t.Fatalf("%s: %v", tc.src, err)
		}
		for _, w := range warnings {
			t.Errorf("%s:%d: adapt warning: %s", w.File, w.Line, w.Message)
		}
		var pretty bytes.Buffer
		if err := json.Indent(&pretty, out, "", "\t"); err != nil {
			t.Fatal(err)
		}
		pretty.WriteByte('\n')
		if *update {
			if err := os.WriteFile(filepath.Clean(tc.golden), pretty.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(tc.golden)
		if err != nil {
			t.Fatalf("%v (run go test ./caddy -run TestAdapt -update to create it)", err)
		}
		if !bytes.Equal(pretty.Bytes(), want) {
			t.Errorf("%s adapts differently from %s:\n%s", tc.src, tc.golden, pretty.String())
		}
		if !strings.Contains(pretty.String(), `"secret": "{env.JWT_SECRET}"`) {
			t.Errorf("%s: the secret is not left as a placeholder in the JSON", tc.src)
		}
	}
}

// TestAdapt_DirectiveOrder: tokengate runs before basic_auth and every
// handler that serves, whatever order the Caddyfile lists them in.
func TestAdapt_DirectiveOrder(t *testing.T) {
	src := `:8080 {
	reverse_proxy 127.0.0.1:3000
	basic_auth /admin/* {
		admin $2a$14$Zkx19XLiW6VYouLHR5NmfOFU0z2GTNmpkT/5qqR7hx4IjWJPDhjvG
	}
	tokengate {
		key HS256 {env.JWT_SECRET}
	}
}`
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	gate, auth, proxy := strings.Index(s, `"handler":"tokengate"`), strings.Index(s, `"handler":"authentication"`), strings.Index(s, `"handler":"reverse_proxy"`)
	if gate < 0 || auth < 0 || proxy < 0 || !(gate < auth && auth < proxy) {
		t.Fatalf("handler order tokengate=%d basic_auth=%d reverse_proxy=%d in %s", gate, auth, proxy, s)
	}
}
