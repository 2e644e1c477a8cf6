package plugin

import (
	"strconv"
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
//	    key HS256|HS384|HS512 <secret>            [kid <id>] [retired]
//	    key RS256|PS256|ES256|EdDSA <pem-file>    [kid <id>] [retired]
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
//
//	    session {
//	        login <METHOD> <path> [field <name>]   # the API's login; field default access_token
//	        refresh <path>                # answered by tokengate (POST)
//	        logout <path>                 # answered by tokengate (POST), optional
//	        access_ttl <duration>         # default: the API token's own lifetime
//	        idle <duration>               # default 24h
//	        lifetime <duration>           # default 7d
//	        reuse_grace <duration>        # default 10s, at most 1m
//	        cookie <name> [path] [domain] [same_site]   # default tg_refresh / - strict
//	        body_fields                   # also put refresh_token in JSON answers
//	        refresh_header <name>         # header carrying the refresh token
//	        allowed_origins <origin...>   # browser origins allowed to use the cookie
//	        access_token_header <name>    # inline refresh answer header, default X-Access-Token
//	    }
//	    job <METHOD> <path> {             # repeatable: one per kind of long-running job
//	        status <METHOD> <path-with-{id}>   # required, e.g. GET /leasing/renewals/sync/{id}
//	        id_field <name>               # default jobId
//	        ttl <duration>                # default 48h
//	        token_header <name>           # default X-Job-Token
//	        body_field <name>             # also put the job token in the JSON answer
//	        allow_expired_owner           # the owner's expired token may poll while the grant lives
//	        done_field <name>             # e.g. status
//	        done_values <value...>        # e.g. completed failed
//	        done_after <duration>         # grant ends this long after a done value; default 10m
//	    }
//	    store file [path] | memory | redis <address...> {
//	        master_name <name>            # Sentinel
//	        cluster                       # Cluster with one address
//	        username <user>
//	        password <password>           # e.g. {env.REDIS_PASSWORD}
//	        db <n>
//	        tls
//	        prefix <prefix>               # default tokengate:
//	    }
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
			if len(args) < 2 {
				return d.Errf("key: want `key <alg> <secret-or-pem-file> [kid <id>] [retired]`, got %d arguments", len(args))
			}
			kc := KeyConfig{Alg: args[0]}
			if strings.HasPrefix(args[0], "HS") {
				kc.Secret = args[1]
			} else {
				kc.File = args[1]
			}
			for rest := args[2:]; len(rest) > 0; {
				switch {
				case rest[0] == "kid" && len(rest) > 1 && kc.KID == "":
					kc.KID, rest = rest[1], rest[2:]
				case rest[0] == "retired" && !kc.Retired:
					kc.Retired, rest = true, rest[1:]
				default:
					return d.Errf("key: unexpected %q; want `key <alg> <secret-or-pem-file> [kid <id>] [retired]`", rest[0])
				}
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
			g.Leeway = new(caddy.Duration)
			if err := parseDuration(d, g.Leeway); err != nil {
				return err
			}
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
		case "session":
			if d.NextArg() {
				return d.ArgErr()
			}
			sc, err := parseSession(d)
			if err != nil {
				return err
			}
			g.Session = sc
		case "job":
			j, err := parseJob(d)
			if err != nil {
				return err
			}
			g.Jobs = append(g.Jobs, *j)
		case "store":
			st, err := parseStore(d)
			if err != nil {
				return err
			}
			g.Store = st
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

func parseDuration(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	name := d.Val()
	var s string
	if err := oneArg(d, &s); err != nil {
		return err
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil {
		return d.Errf("%s: %v", name, err)
	}
	*dst = caddy.Duration(dur)
	return nil
}

// parseSession reads the session block (see UnmarshalCaddyfile).
func parseSession(d *caddyfile.Dispenser) (*SessionConfig, error) {
	sc := new(SessionConfig)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		var err error
		switch sub {
		case "login":
			args := d.RemainingArgs()
			switch {
			case len(args) == 2:
			case len(args) == 4 && args[2] == "field":
				sc.Login.Field = args[3]
			default:
				return nil, d.Errf("login: want `login <METHOD> <path> [field <name>]`")
			}
			sc.Login.Method, sc.Login.Path = strings.ToUpper(args[0]), args[1]
		case "refresh":
			err = oneArg(d, &sc.RefreshPath)
		case "logout":
			err = oneArg(d, &sc.LogoutPath)
		case "access_ttl":
			err = parseDuration(d, &sc.AccessTTL)
		case "idle":
			err = parseDuration(d, &sc.Idle)
		case "lifetime":
			err = parseDuration(d, &sc.Lifetime)
		case "reuse_grace":
			err = parseDuration(d, &sc.ReuseGrace)
		case "cookie":
			args := d.RemainingArgs()
			if len(args) < 1 || len(args) > 4 {
				return nil, d.Errf("cookie: want `cookie <name> [path] [domain] [same_site]`")
			}
			args = append(args, "", "", "")
			sc.Cookie = CookieConfig{Name: args[0], Path: args[1], Domain: args[2], SameSite: args[3]}
		case "body_fields":
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			sc.BodyFields = true
		case "refresh_header":
			err = oneArg(d, &sc.RefreshHeader)
		case "access_token_header":
			err = oneArg(d, &sc.AccessTokenHeader)
		case "allowed_origins":
			origins := d.RemainingArgs()
			if len(origins) == 0 {
				return nil, d.ArgErr()
			}
			sc.AllowedOrigins = append(sc.AllowedOrigins, origins...)
		default:
			return nil, d.Errf("unrecognized session subdirective '%s'", sub)
		}
		if err != nil {
			return nil, err
		}
	}
	return sc, nil
}

// parseJob reads `job <METHOD> <path> { ... }`.
func parseJob(d *caddyfile.Dispenser) (*JobConfig, error) {
	args := d.RemainingArgs()
	if len(args) != 2 {
		return nil, d.Errf("job: want `job <METHOD> <path> { status <METHOD> <path-with-{id}> ... }`")
	}
	j := &JobConfig{Method: strings.ToUpper(args[0]), Path: args[1]}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		var err error
		switch sub {
		case "status":
			a := d.RemainingArgs()
			if len(a) != 2 {
				return nil, d.Errf("status: want `status <METHOD> <path-with-{id}>`")
			}
			j.StatusMethod, j.StatusPath = strings.ToUpper(a[0]), a[1]
		case "id_field":
			err = oneArg(d, &j.IDField)
		case "ttl":
			err = parseDuration(d, &j.TTL)
		case "token_header":
			err = oneArg(d, &j.TokenHeader)
		case "body_field":
			err = oneArg(d, &j.BodyField)
		case "allow_expired_owner":
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			j.AllowExpiredOwner = true
		case "done_field":
			err = oneArg(d, &j.DoneField)
		case "done_values":
			vals := d.RemainingArgs()
			if len(vals) == 0 {
				return nil, d.ArgErr()
			}
			j.DoneValues = append(j.DoneValues, vals...)
		case "done_after":
			err = parseDuration(d, &j.DoneAfter)
		default:
			return nil, d.Errf("unrecognized job subdirective '%s'", sub)
		}
		if err != nil {
			return nil, err
		}
	}
	return j, nil
}

// parseStore reads `store memory`, `store file [path]` or
// `store redis <addr...> { ... }`.
func parseStore(d *caddyfile.Dispenser) (*StoreConfig, error) {
	if !d.NextArg() {
		return nil, d.Errf("store: want `store file [path]`, `store memory` or `store redis <address...>`")
	}
	st := &StoreConfig{Type: d.Val()}
	args := d.RemainingArgs()
	switch st.Type {
	case "memory":
		if len(args) > 0 {
			return nil, d.ArgErr()
		}
	case "file":
		if len(args) > 1 {
			return nil, d.ArgErr()
		}
		if len(args) == 1 {
			st.Path = args[0]
		}
	case "redis":
		st.Addrs = args
	default:
		return nil, d.Errf("store: unknown type %q; use file, memory or redis", st.Type)
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if st.Type != "redis" {
			return nil, d.Errf("store %s takes no block", st.Type)
		}
		sub := d.Val()
		var err error
		switch sub {
		case "addrs":
			st.Addrs = append(st.Addrs, d.RemainingArgs()...)
		case "master_name":
			err = oneArg(d, &st.MasterName)
		case "cluster":
			st.Cluster = true
		case "username":
			err = oneArg(d, &st.Username)
		case "password":
			err = oneArg(d, &st.Password)
		case "db":
			var s string
			if err = oneArg(d, &s); err == nil {
				if st.DB, err = strconv.Atoi(s); err != nil {
					err = d.Errf("db: %q is not a number", s)
				}
			}
		case "tls":
			st.TLS = true
		case "prefix":
			err = oneArg(d, &st.Prefix)
		default:
			return nil, d.Errf("unrecognized redis store subdirective '%s'", sub)
		}
		if err != nil {
			return nil, err
		}
	}
	if st.Type == "redis" && len(st.Addrs) == 0 {
		return nil, d.Errf("store redis: at least one address (host:port or redis:// URL) is required")
	}
	return st, nil
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
