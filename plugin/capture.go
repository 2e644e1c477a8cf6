package plugin

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/http"
	"strconv"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// maxCapturedAnswer caps an answer tokengate buffers to read or augment
// (login, job start, job status); a larger one streams through untouched.
const maxCapturedAnswer = 1 << 20

// captured is an upstream answer held back so tokengate can read it.
type captured struct {
	rec  caddyhttp.ResponseRecorder
	body []byte
}

// captureJSON runs next and holds back its answer when it is a 2xx,
// uncompressed JSON answer of at most maxCapturedAnswer bytes. It returns
// nil when the answer was something else and has already been streamed to
// the client. Only routes that need the answer call it; every other request
// streams.
func captureJSON(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) (*captured, error) {
	// The answer may be edited, so ask the API for it uncompressed.
	r.Header.Del("Accept-Encoding")
	buf := new(bytes.Buffer)
	rec := caddyhttp.NewResponseRecorder(w, buf, func(status int, h http.Header) bool {
		if status < 200 || status > 299 || h.Get("Content-Encoding") != "" {
			return false
		}
		if mt, _, _ := mime.ParseMediaType(h.Get("Content-Type")); mt != "application/json" {
			return false
		}
		n, err := strconv.ParseInt(h.Get("Content-Length"), 10, 64)
		return err != nil || n <= maxCapturedAnswer
	})
	if err := next.ServeHTTP(rec, r); err != nil {
		return nil, err
	}
	if !rec.Buffered() {
		return nil, nil
	}
	return &captured{rec: rec, body: buf.Bytes()}, nil
}

// tooLarge reports an answer without Content-Length that grew past the cap.
func (c *captured) tooLarge() bool { return len(c.body) > maxCapturedAnswer }

// pass sends the answer on as the API gave it.
func (c *captured) pass() error { return c.rec.WriteResponse() }

// send sends the answer with body in place of the API's (headers set on w
// since capture are kept; Content-Length is fixed).
func (c *captured) send(w http.ResponseWriter, body []byte) error {
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(c.rec.Status())
	_, err := w.Write(body)
	return err
}

// field returns the top-level member name of the JSON object body as text:
// a string as it is, a number in its JSON form.
func field(body []byte, name string) (string, bool) {
	var obj map[string]json.RawMessage
	if json.Unmarshal(body, &obj) != nil {
		return "", false
	}
	raw := bytes.TrimSpace(obj[name])
	if len(raw) == 0 {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, s != ""
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String(), true
	}
	return "", false
}
