package plugin

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/tokengate/tokengate/plugin/store"
	"github.com/tokengate/tokengate/plugin/token"
)

// Exit codes of `caddy tokengate` subcommands.
const (
	exitOK      = 0
	exitUsage   = 2 // bad arguments or configuration
	exitExpired = 3 // inspect: correctly signed but expired
	exitRefused = 4 // inspect: refused
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "tokengate",
		Usage: "inspect|gen-secret|mint|sessions ...",
		Short: "Inspects and mints tokens, generates secrets, lists and revokes sessions",
		Long: `
Tools for operating tokengate. Each subcommand that needs keys or a store
reads them from a Caddyfile (--config, default ./Caddyfile) exactly as
Caddy would, placeholders such as {env.JWT_SECRET} included.

  caddy tokengate inspect <token> [--config Caddyfile]
  caddy tokengate gen-secret [--bytes 48]
  caddy tokengate mint --sub <subject> [--claim name=value]... [--ttl 1h] [--config Caddyfile]
  caddy tokengate sessions list --subject <sub> [--config Caddyfile]
  caddy tokengate sessions revoke --subject <sub> [--config Caddyfile]

Exit codes: 0 success (inspect: valid), 2 bad usage or configuration,
3 inspect: expired, 4 inspect: refused.
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.AddCommand(inspectCommand(), genSecretCommand(), mintCommand(), sessionsCommand())
		},
	})
}

func addConfigFlags(c *cobra.Command) {
	c.Flags().StringP("config", "c", "Caddyfile", "Caddyfile (or JSON config) holding the tokengate handler")
	c.Flags().StringP("adapter", "a", "", "config adapter (default: caddyfile for files named Caddyfile*)")
}

// wrap turns a function returning an exit code into a cobra RunE.
func wrap(f func(cmd *cobra.Command, args []string) (int, error)) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		code, err := f(cmd, args)
		if err != nil {
			fmt.Fprintln(cmd.ErrOrStderr(), "tokengate:", err)
		}
		if code != exitOK {
			cmd.SilenceErrors, cmd.SilenceUsage = true, true
			os.Exit(code)
		}
		return nil
	}
}

// gateFromConfig loads the config and returns the first tokengate handler
// in it, not yet provisioned.
func gateFromConfig(cmd *cobra.Command) (*Gate, error) {
	file, _ := cmd.Flags().GetString("config")
	adapter, _ := cmd.Flags().GetString("adapter")
	cfg, _, _, err := caddycmd.LoadConfig(file, adapter)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", file, err)
	}
	var root any
	if err := json.Unmarshal(cfg, &root); err != nil {
		return nil, fmt.Errorf("reading %s: %w", file, err)
	}
	raw := findHandler(root)
	if raw == nil {
		return nil, fmt.Errorf("%s has no tokengate handler", file)
	}
	b, _ := json.Marshal(raw)
	g := new(Gate)
	if err := json.Unmarshal(b, g); err != nil {
		return nil, fmt.Errorf("reading the tokengate handler: %w", err)
	}
	return g, nil
}

// findHandler walks a JSON config for the first {"handler": "tokengate"}.
func findHandler(v any) map[string]any {
	switch t := v.(type) {
	case map[string]any:
		if t["handler"] == "tokengate" {
			return t
		}
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if h := findHandler(t[k]); h != nil {
				return h
			}
		}
	case []any:
		for _, e := range t {
			if h := findHandler(e); h != nil {
				return h
			}
		}
	}
	return nil
}

// keysFromConfig loads the config's tokengate handler and provisions its
// verification side only: keys, issuer, audience, leeway; never the store
// (a running Caddy may hold the file store).
func keysFromConfig(cmd *cobra.Command) (*Gate, error) {
	g, err := gateFromConfig(cmd)
	if err != nil {
		return nil, err
	}
	g.Session, g.Jobs, g.Store = nil, nil, nil
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err = g.Provision(ctx); err == nil {
		err = g.Validate()
	}
	if err != nil {
		return nil, fmt.Errorf("tokengate config: %w", err)
	}
	g.verifier.Cache = nil
	return g, nil
}

func inspectCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "inspect <token>",
		Short: "Shows a token's header, claims and expiry, and verifies it against the Caddyfile's keys",
		Args:  cobra.ExactArgs(1),
	}
	addConfigFlags(c)
	c.Flags().Bool("no-verify", false, "only decode; do not load keys")
	c.RunE = wrap(func(cmd *cobra.Command, args []string) (int, error) {
		return inspect(cmd, strings.TrimPrefix(strings.TrimSpace(args[0]), "Bearer "))
	})
	return c
}

func inspect(cmd *cobra.Command, raw string) (int, error) {
	out := cmd.OutOrStdout()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		fmt.Fprintln(out, "verdict: refused (malformed): not three dot-separated segments")
		return exitRefused, nil
	}
	fmt.Fprintln(out, "header (as sent, not yet trusted):")
	printSegment(out, parts[0])
	fmt.Fprintln(out, "claims (as sent, not yet trusted):")
	claims := printSegment(out, parts[1])
	if exp, ok := claims["exp"].(json.Number); ok {
		if n, err := exp.Int64(); err == nil {
			t := time.Unix(n, 0)
			if d := time.Until(t); d > 0 {
				fmt.Fprintf(out, "expiry: %s (in %s)\n", t.Format(time.RFC3339), d.Round(time.Second))
			} else {
				fmt.Fprintf(out, "expiry: %s (%s ago)\n", t.Format(time.RFC3339), (-d).Round(time.Second))
			}
		}
	}
	if skip, _ := cmd.Flags().GetBool("no-verify"); skip {
		return exitOK, nil
	}
	g, err := keysFromConfig(cmd)
	if err != nil {
		return exitUsage, err
	}
	_, err = g.verifier.Verify(context.Background(), raw)
	var te *token.Error
	switch {
	case err == nil:
		fmt.Fprintln(out, "verdict: valid")
		return exitOK, nil
	case errors.As(err, &te) && te.Reason == token.ReasonExpired:
		fmt.Fprintln(out, "verdict: expired (signature and claims valid; a session or job grant may still serve it)")
		return exitExpired, nil
	case errors.As(err, &te):
		fmt.Fprintf(out, "verdict: refused (%s): %s\n", te.Reason, te.Detail)
		return exitRefused, nil
	}
	return exitRefused, err
}

// printSegment prints a base64url JSON segment, indented, and returns it
// decoded (numbers as json.Number).
func printSegment(out io.Writer, seg string) map[string]any {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		fmt.Fprintln(out, "  (not base64url)")
		return nil
	}
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.UseNumber()
	var m map[string]any
	if d.Decode(&m) != nil {
		fmt.Fprintln(out, "  (not a JSON object)")
		return nil
	}
	pretty, _ := json.MarshalIndent(m, "  ", "  ")
	fmt.Fprintf(out, "  %s\n", pretty)
	return m
}

func genSecretCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "gen-secret",
		Short: "Writes a strong random HS256 secret (base64url) to stdout",
		Args:  cobra.NoArgs,
	}
	c.Flags().Int("bytes", 48, "random bytes in the secret (at least 32)")
	c.RunE = wrap(func(cmd *cobra.Command, _ []string) (int, error) {
		n, _ := cmd.Flags().GetInt("bytes")
		if n < token.MinHMACSecretLen {
			return exitUsage, fmt.Errorf("--bytes %d: at least %d are needed", n, token.MinHMACSecretLen)
		}
		b := make([]byte, n)
		if _, err := rand.Read(b); err != nil {
			return exitUsage, err
		}
		fmt.Fprintln(cmd.OutOrStdout(), base64.RawURLEncoding.EncodeToString(b))
		return exitOK, nil
	})
	return c
}

func mintCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "mint --sub <subject>",
		Short: "Mints an access token with the Caddyfile's first signing key, for testing",
		Args:  cobra.NoArgs,
	}
	addConfigFlags(c)
	c.Flags().String("sub", "", "the sub claim (required)")
	c.Flags().StringArray("claim", nil, "another claim, name=value (repeatable; JSON values such as 3 or true are kept as JSON)")
	c.Flags().Duration("ttl", time.Hour, "lifetime")
	c.RunE = wrap(func(cmd *cobra.Command, _ []string) (int, error) {
		sub, _ := cmd.Flags().GetString("sub")
		if sub == "" {
			return exitUsage, errors.New("--sub is required")
		}
		ttl, _ := cmd.Flags().GetDuration("ttl")
		if ttl <= 0 {
			return exitUsage, errors.New("--ttl must be positive")
		}
		claims := map[string]json.RawMessage{}
		subJSON, _ := json.Marshal(sub)
		claims["sub"] = subJSON
		pairs, _ := cmd.Flags().GetStringArray("claim")
		for _, p := range pairs {
			name, value, ok := strings.Cut(p, "=")
			if !ok || name == "" {
				return exitUsage, fmt.Errorf("--claim %q: want name=value", p)
			}
			if json.Valid([]byte(value)) && !strings.HasPrefix(value, `"`) && value != "" {
				claims[name] = json.RawMessage(value)
			} else {
				s, _ := json.Marshal(value)
				claims[name] = s
			}
		}
		g, err := keysFromConfig(cmd)
		if err != nil {
			return exitUsage, err
		}
		if g.Issuer != "" {
			claims["iss"], _ = json.Marshal(g.Issuer)
		}
		if len(g.Audience) > 0 {
			claims["aud"], _ = json.Marshal(g.Audience[0])
		}
		k := g.verifier.Keys.FirstSigner()
		if k == nil {
			return exitUsage, errors.New("the config has no key that can sign (an HMAC secret or a private key)")
		}
		snap, _ := json.Marshal(claims)
		tok, _, err := k.Mint(snap, "JWT", time.Now(), ttl)
		if err != nil {
			return exitUsage, err
		}
		fmt.Fprintln(cmd.OutOrStdout(), tok)
		return exitOK, nil
	})
	return c
}

func sessionsCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "sessions list|revoke --subject <sub>",
		Short: "Lists or revokes a user's sessions in the configured store",
		Long: `Lists or revokes (logs out) every session of a subject in the store the
Caddyfile configures. The file store is locked by a running Caddy: stop it
first, or use the redis store, which any number of processes share.`,
	}
	for _, action := range []string{"list", "revoke"} {
		sub := &cobra.Command{Use: action + " --subject <sub>", Args: cobra.NoArgs}
		addConfigFlags(sub)
		sub.Flags().String("subject", "", "the user's sub claim (required)")
		sub.RunE = wrap(func(cmd *cobra.Command, _ []string) (int, error) {
			return sessions(cmd, action)
		})
		c.AddCommand(sub)
	}
	return c
}

func sessions(cmd *cobra.Command, action string) (int, error) {
	subject, _ := cmd.Flags().GetString("subject")
	if subject == "" {
		return exitUsage, errors.New("--subject is required")
	}
	g, err := gateFromConfig(cmd)
	if err != nil {
		return exitUsage, err
	}
	cfg := StoreConfig{}
	if g.Store != nil {
		cfg = *g.Store
	}
	if cfg.Type == "memory" {
		return exitUsage, errors.New("the memory store lives inside the Caddy process; nothing to list from outside")
	}
	st, key, err := openStore(cfg)
	if err != nil {
		return exitUsage, fmt.Errorf("opening the store: %w", err)
	}
	defer stores.Delete(key) //nolint:errcheck
	ctx := context.Background()
	fams, err := store.Families(ctx, st, subject)
	if err != nil {
		return exitUsage, err
	}
	out := cmd.OutOrStdout()
	now := time.Now()
	for _, f := range fams {
		state := "live"
		switch {
		case f.Revoked:
			state = "revoked"
		case !now.Before(f.Deadline()):
			state = "ended"
		}
		fmt.Fprintf(out, "%s  %-7s  created %s  last used %s  ends %s  rotations %d\n", fingerprint(f.ID), state,
			f.Created.Format(time.RFC3339), f.LastUsed.Format(time.RFC3339), f.Deadline().Format(time.RFC3339), f.Generation)
		if action == "revoke" {
			if err := st.Delete(ctx, f.ID); err != nil {
				return exitUsage, err
			}
		}
	}
	verb := "found"
	if action == "revoke" {
		verb = "revoked"
	}
	fmt.Fprintf(out, "%d session(s) of %q %s\n", len(fams), subject, verb)
	return exitOK, nil
}
