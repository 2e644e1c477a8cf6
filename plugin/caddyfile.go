package plugin

import (
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("tokengate", parseCaddyfile)
	// Authentication comes before every handler that serves or proxies,
	// like basic_auth, so tokengate sits just before it.
	httpcaddyfile.RegisterDirectiveOrder("tokengate", httpcaddyfile.Before, "basic_auth")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	g := new(Gate)
	err := g.UnmarshalCaddyfile(h.Dispenser)
	return g, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	tokengate {
//	    # verification keys; repeatable, each bound to one algorithm
//	    key HS256|HS384|HS512 <secret>            [kid <id>]
//	    key RS256|PS256|ES256|EdDSA <pem-file>    [kid <id>]
//	    jwks <url...>                 # published keys, verification only
//	    issuer   <iss>                # required iss, when set
//	    audience <aud...>             # accepted aud values, when set
//	    leeway   <duration>           # clock skew, default 30s, at most 5m
//
//	    # where the token is; repeatable, first match wins;
//	    # default: header Authorization (Bearer)
//	    token_source header <name> | cookie <name> | query <name>
//
//	    public <paths...>             # no token needed (path-matcher syntax)
//	    forward_claim <claim> <Header>  # repeatable
//	    realm <realm>                 # WWW-Authenticate realm, default tokengate
//	    allow_weak_key                # start with a weak HMAC secret (not recommended)
//	}
//
// Secrets should be placeholders such as {env.JWT_SECRET}, resolved at
// provisioning so they stay out of the adapted JSON.
func (g *Gate) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "key":
			args := d.RemainingArgs()
			if len(args) != 2 && len(args) != 4 {
				return d.Errf("key: want `key <alg> <secret-or-pem-file> [kid <id>]`, got %d arguments", len(args))
			}
			kc := KeyConfig{Alg: args[0]}
			if strings.HasPrefix(args[0], "HS") {
				kc.Secret = args[1]
			} else {
				kc.File = args[1]
			}
			if len(args) == 4 {
				if args[2] != "kid" {
					return d.Errf("key: expected `kid <id>` after the key material, got %q", args[2])
				}
				kc.KID = args[3]
			}
			g.Keys = append(g.Keys, kc)
		case "jwks":
			urls := d.RemainingArgs()
			if len(urls) == 0 {
				return d.ArgErr()
			}
			g.JWKSURLs = append(g.JWKSURLs, urls...)
		case "issuer":
			if err := oneArg(d, &g.Issuer); err != nil {
				return err
			}
		case "audience":
			auds := d.RemainingArgs()
			if len(auds) == 0 {
				return d.ArgErr()
			}
			g.Audience = append(g.Audience, auds...)
		case "leeway":
			var s string
			if err := oneArg(d, &s); err != nil {
				return err
			}
			dur, err := caddy.ParseDuration(s)
			if err != nil {
				return d.Errf("leeway: %v", err)
			}
			g.Leeway = caddy.Duration(dur)
		case "token_source":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Errf("token_source: want `token_source header|cookie|query <name>`")
			}
			switch args[0] {
			case "header", "cookie", "query":
			default:
				return d.Errf("token_source: unknown source %q; use header, cookie or query", args[0])
			}
			g.TokenSources = append(g.TokenSources, TokenSource{From: args[0], Name: args[1]})
		case "public":
			paths := d.RemainingArgs()
			if len(paths) == 0 {
				return d.ArgErr()
			}
			g.Public = append(g.Public, paths...)
		case "forward_claim":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Errf("forward_claim: want `forward_claim <claim> <Header>`")
			}
			g.ForwardClaims = append(g.ForwardClaims, ForwardClaim{Claim: args[0], Header: args[1]})
		case "realm":
			if err := oneArg(d, &g.Realm); err != nil {
				return err
			}
		case "allow_weak_key":
			if d.NextArg() {
				return d.ArgErr()
			}
			g.AllowWeakKey = true
		default:
			return d.Errf("unrecognized subdirective '%s'", d.Val())
		}
	}
	return nil
}

// oneArg reads exactly one argument into dst.
func oneArg(d *caddyfile.Dispenser, dst *string) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	*dst = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*Gate)(nil)
)
