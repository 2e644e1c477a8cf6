#!/usr/bin/env bash
# make demo: the seed's problem and its fix, against the stand-in leasing API.
#
# Starts the stand-in API on 127.0.0.1:3000 (tokens of ACCESS_TTL, default 5s
# here so the story fits in half a minute; a renewals sync of JOB_DURATION,
# default 20s) and Caddy with the root Caddyfile on :8080 (admin and
# /metrics on localhost:2019), sharing a freshly generated strong secret.
# Then it walks through: login, a job that outlives the access token,
# status polling that keeps working, an inline refresh, the refresh route,
# a forged token, a logout, and the metrics that moved.
#
# Afterwards it keeps both running for you to try until Ctrl-C when run
# from a terminal; otherwise (or with DEMO_EXIT=1) it stops both and exits.
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

# 48 random bytes: a secret tokengate accepts. The seed's 14-character
# JWT_SECRET would be refused at start (see README, "Security model").
JWT_SECRET=$(head -c 48 /dev/urandom | base64 | tr -d '\n')
export JWT_SECRET
export ACCESS_TTL=${ACCESS_TTL:-5s} JOB_DURATION=${JOB_DURATION:-20s}

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

B=$'\033[1m' N=$'\033[0m'
step() { printf '\n%s== %s%s\n' "$B" "$*" "$N"; }
say() { printf '   %s\n' "$*"; }
short() { sed -E 's/(ey[A-Za-z0-9_-]{12})[A-Za-z0-9_.-]*/\1.../g; s/(tg_refresh=.{10})[^;]*/\1.../'; }
header() { printf '%s' "$1" | tr -d '\r' | sed -n "s/^$2: //Ip" | head -1; }
cookie() { printf '%s' "$1" | tr -d '\r' | sed -n 's/^[Ss]et-[Cc]ookie: tg_refresh=\([^;]*\);.*/\1/p' | head -1; }
api() { curl -s -i "$@" | tr -d '\r'; }

step "1. Log in through tokengate (stand-in API: HS256 tokens of $ACCESS_TTL; OTP 123456)"
login=$(api -X POST http://127.0.0.1:8080/auth/verify-otp -H 'Content-Type: application/json' \
  -d '{"email":"ops@example.com","otp":"123456"}')
printf '%s\n' "$login" | grep -iE '^(HTTP|Set-Cookie)|access_token' | short
TOKEN=$(printf '%s' "$login" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
REFRESH=$(cookie "$login")
say "The API's answer is unchanged; tokengate added an HttpOnly refresh cookie."

step "2. Start a renewals sync (runs $JOB_DURATION, longer than the token lives)"
start=$(api -X POST http://127.0.0.1:8080/leasing/renewals/sync -H "Authorization: Bearer $TOKEN")
printf '%s\n' "$start" | grep -iE '^(HTTP|X-Job-Token)|jobId' | short
JOB=$(printf '%s' "$start" | sed -n 's/.*"jobId":"\([^"]*\)".*/\1/p')
JOBTOKEN=$(header "$start" X-Job-Token)
say "tokengate recorded a job grant and returned a job token for job $JOB."

step "3. Wait for the access token to expire: this is where users used to lose their work"
sleep "$(( ${ACCESS_TTL%s} + 1 ))"
printf '$ curl /leasing/renewals -H "Authorization: Bearer $TOKEN"\n'
api http://127.0.0.1:8080/leasing/renewals -H "Authorization: Bearer $TOKEN" | sed -n '1p;$p'

step "4. Status polling keeps working: with the expired owner token, and with the job token"
api "http://127.0.0.1:8080/leasing/renewals/sync/$JOB" -H "Authorization: Bearer $TOKEN" | sed -n '1p;$p'
api "http://127.0.0.1:8080/leasing/renewals/sync/$JOB" -H "X-Job-Token: $JOBTOKEN" | sed -n '1p;$p'
say "The API received a freshly minted token for the owner each time."

step "5. Inline refresh: the expired token plus the refresh cookie just works"
inline=$(api http://127.0.0.1:8080/leasing/renewals -H "Authorization: Bearer $TOKEN" -H "Cookie: tg_refresh=$REFRESH")
printf '%s\n' "$inline" | grep -iE '^(HTTP|X-Access-Token)' | short
printf '%s\n' "$inline" | tail -1 | cut -c1-100
REFRESH=$(cookie "$inline")

step "6. The refresh route (for clients that refresh explicitly)"
refreshed=$(api -X POST http://127.0.0.1:8080/auth/refresh -H "Cookie: tg_refresh=$REFRESH")
printf '%s\n' "$refreshed" | grep -E '^HTTP|"token_type"' | short
REFRESH=$(cookie "$refreshed")

step "7. A forged token (alg none) is refused with its reason"
FORGED="$(printf '{"alg":"none"}' | base64 | tr -d '=\n' | tr '/+' '_-').$(printf '{"sub":"admin","exp":9999999999}' | base64 | tr -d '=\n' | tr '/+' '_-')."
api http://127.0.0.1:8080/leasing/renewals -H "Authorization: Bearer $FORGED" | tail -1

step "8. Poll until the job completes (job token, every 3s)"
for _ in $(seq 1 20); do
  body=$(curl -s "http://127.0.0.1:8080/leasing/renewals/sync/$JOB" -H "X-Job-Token: $JOBTOKEN")
  say "$body"
  case "$body" in *completed*) break ;; esac
  sleep 3
done

step "9. Log out: the session ends; its refresh cookie no longer works"
api -X POST http://127.0.0.1:8080/auth/logout -H "Cookie: tg_refresh=$REFRESH" | sed -n 1p
api -X POST http://127.0.0.1:8080/auth/refresh -H "Cookie: tg_refresh=$REFRESH" | tail -1

step "10. What Prometheus sees (Caddy admin /metrics; the counters that moved)"
curl -s http://localhost:2019/metrics | grep -E '^caddy_tokengate_[a-z_]+(\{[^}]*\})? ' | grep -v '_bucket\|_sum\|_count' | grep -v ' 0$'

if [ "${DEMO_EXIT:-0}" = 1 ] || [ ! -t 0 ]; then
  printf '\nDemo done; stopping Caddy and the stand-in API.\n'
  exit 0
fi
cat <<MSG

Both keep running; try it yourself:
  curl -s -i -X POST http://127.0.0.1:8080/auth/verify-otp -H 'Content-Type: application/json' -d '{"email":"you@example.com","otp":"123456"}'
  curl -s http://localhost:2019/metrics | grep caddy_tokengate
  $BIN/caddy tokengate inspect <token> --config Caddyfile   (with JWT_SECRET=$JWT_SECRET)

Logs: $work/caddy.log and $work/api.log. Ctrl-C stops both.
MSG
wait
