#!/usr/bin/env bash
# make demo: the stand-in leasing API on 127.0.0.1:3000 and Caddy with
# tokengate on :8080 (the root Caddyfile), a freshly generated strong
# JWT_SECRET shared by both, and a short tour. Ctrl-C stops both.
#
# DEMO_EXIT=1 runs the tour and exits (used by the tests).
set -euo pipefail
cd "$(dirname "$0")/../.."

for port in 8080 3000 2019; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "demo: port $port is already in use; stop what listens there first." >&2
    exit 1
  fi
done

BIN=${BIN:-bin}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 48 random bytes, base64: a secret tokengate accepts (the seed's 14-character
# one would be refused at start).
JWT_SECRET=$(head -c 48 /dev/urandom | base64 | tr -d '\n')
export JWT_SECRET
export ACCESS_TTL=${ACCESS_TTL:-1h} JOB_DURATION=${JOB_DURATION:-2m}

"$BIN/leasing-api" >"$work/api.log" 2>&1 &
pids+=($!)
HOME=$work XDG_DATA_HOME=$work XDG_CONFIG_HOME=$work \
  "$BIN/caddy" run --config Caddyfile --adapter caddyfile >"$work/caddy.log" 2>&1 &
pids+=($!)

for _ in $(seq 1 100); do
  curl -fs http://127.0.0.1:8080/health >/dev/null 2>&1 && break
  sleep 0.1
done
if ! curl -fs http://127.0.0.1:8080/health >/dev/null; then
  echo "demo: Caddy did not come up; its log:" >&2
  cat "$work/caddy.log" >&2
  exit 1
fi

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; eval "$@"; echo; }

step "Log in through tokengate (the API signs a 1h HS256 token; OTP is 123456)"
login=$(curl -s -i -X POST http://127.0.0.1:8080/auth/verify-otp \
  -H 'Content-Type: application/json' -d '{"email":"ops@example.com","otp":"123456"}')
echo "$login" | grep -iE '^(HTTP|Set-Cookie)|access_token' | sed -E 's/(tg_refresh=.{12})[^;]*/\1.../'
TOKEN=$(printf '%s' "$login" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
REFRESH=$(printf '%s' "$login" | sed -n 's/^[Ss]et-[Cc]ookie: tg_refresh=\([^;]*\);.*/\1/p')
echo "(the API's answer is unchanged; tokengate added the HttpOnly refresh cookie)"

step "A protected route without a token: tokengate answers 401, the API never sees it"
show "curl -s -i http://127.0.0.1:8080/leasing/renewals | sed -n '1p;/^Www-Authenticate/p;\$p'"

step "With the token: verified by tokengate, then by the API's own guard"
show "curl -s http://127.0.0.1:8080/leasing/renewals -H \"Authorization: Bearer \$TOKEN\""

step "A forged token (alg none): refused with its reason"
FORGED="$(printf '{"alg":"none"}' | base64 | tr -d '=\n' | tr '/+' '_-').$(printf '{"sub":"admin","exp":9999999999}' | base64 | tr -d '=\n' | tr '/+' '_-')."
show "curl -s http://127.0.0.1:8080/leasing/renewals -H \"Authorization: Bearer \$FORGED\""

step "Refresh: the cookie is spent and rotated, a new access token is minted for the API"
refreshed=$(curl -s -i -X POST http://127.0.0.1:8080/auth/refresh -H "Cookie: tg_refresh=$REFRESH")
echo "$refreshed" | grep -E '^HTTP|"token_type"' | sed -E 's/"access_token":"(.{16})[^"]*"/"access_token":"\1..."/'
ROTATED=$(printf '%s' "$refreshed" | sed -n 's/^[Ss]et-[Cc]ookie: tg_refresh=\([^;]*\);.*/\1/p')

step "The old refresh cookie replayed after the grace window: the whole session is revoked"
sleep 11
show "curl -s -X POST http://127.0.0.1:8080/auth/refresh -H \"Cookie: tg_refresh=\$REFRESH\""
show "curl -s -X POST http://127.0.0.1:8080/auth/refresh -H \"Cookie: tg_refresh=\$ROTATED\""

step "Logout (idempotent: 204 whether or not a session was found)"
show "curl -s -o /dev/null -w '%{http_code}\\n' -X POST http://127.0.0.1:8080/auth/logout -H \"Cookie: tg_refresh=\$ROTATED\""

step "What Prometheus sees (Caddy admin /metrics)"
show "curl -s http://localhost:2019/metrics | grep -E '^caddy_tokengate_(rejections_total|decisions_total|sessions_started_total|refreshes_total|refresh_reuse_detected_total|sessions_ended_total)' | grep -v ' 0$'"

if [ "${DEMO_EXIT:-0}" = 1 ]; then
  exit 0
fi
cat <<MSG

Try it yourself (the token above is in \$TOKEN of this shell only; log in again as shown):
  curl -s -X POST http://127.0.0.1:8080/auth/verify-otp -H 'Content-Type: application/json' -d '{"email":"you@example.com","otp":"123456"}'
  curl -s -X POST http://127.0.0.1:8080/leasing/renewals/sync -H "Authorization: Bearer <token>"
  curl -s http://127.0.0.1:8080/leasing/renewals/sync/<jobId> -H "Authorization: Bearer <token>"
  curl -s http://localhost:2019/metrics | grep caddy_tokengate

Logs: $work/caddy.log and $work/api.log. Ctrl-C stops both.
MSG
wait
