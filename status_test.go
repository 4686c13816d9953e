package cgirun

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/yookoala/gofast"

	"github.com/cgirun/cgirun/internal/status"
	"github.com/cgirun/cgirun/internal/testenv"
)

// statusServer is a Server in HTTP or FastCGI mode under test, with a
// handler that answers /code/N with status N and holds /hold until
// released.
type statusServer struct {
	t       *testing.T
	s       *Server
	mode    Mode
	sock    string
	held    chan struct{} // a /hold request reached the handler
	release chan struct{} // closed: /hold requests return
	logs    *syncBuffer
}

func startStatusServer(t *testing.T, mode Mode, env map[string]string) *statusServer {
	t.Helper()
	clearSettings(t)
	ss := &statusServer{t: t, mode: mode, held: make(chan struct{}, 8), release: make(chan struct{}), logs: new(syncBuffer)}
	all := map[string]string{"CGIRUN_STATUS_PATH": "/status", "CGIRUN_HTTP": "127.0.0.1:0"}
	if mode == ModeFastCGI {
		ss.sock = filepath.Join(t.TempDir(), "app.sock")
		all["CGIRUN_FASTCGI"] = "unix:" + ss.sock
	}
	for k, v := range env {
		all[k] = v
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/hold":
			ss.hold()
		case r.URL.Path == "/wait":
			<-r.Context().Done()
			return
		case strings.HasPrefix(r.URL.Path, "/code/"):
			code, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/code/"))
			w.WriteHeader(code)
		}
		io.WriteString(w, "ok")
	})
	ss.s = NewServer(testConfig(t, all), h, Options{Logger: slog.New(slog.NewTextHandler(ss.logs, nil))})
	served := serveInBackground(t, ss.s)
	t.Cleanup(func() {
		select {
		case <-ss.release:
		default:
			close(ss.release)
		}
		ss.s.Close()
		<-served
	})
	return ss
}

// hold is the handler of /hold: it and a goroutine it starts wait for
// the test's release.
func (ss *statusServer) hold() {
	done := make(chan struct{})
	go awaitRelease(ss.release, done)
	ss.held <- struct{}{}
	<-done
}

func awaitRelease(release <-chan struct{}, done chan<- struct{}) {
	<-release
	close(done)
}

// get asks for target with the header's fields, over HTTP or FastCGI.
func (ss *statusServer) get(target string, header http.Header) *httptest.ResponseRecorder {
	t := ss.t
	t.Helper()
	w := httptest.NewRecorder()
	if ss.mode == ModeHTTP {
		req, err := http.NewRequest("GET", "http://"+ss.s.Addrs()[0].String()+target, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header[k] = v
		}
		tr := &http.Transport{DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Errorf("GET %s: %v", target, err)
			return w
		}
		defer resp.Body.Close()
		w.Code = resp.StatusCode
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		io.Copy(w.Body, resp.Body)
		return w
	}
	path, _, _ := strings.Cut(target, "?")
	req := gofast.NewRequest(nil)
	req.Params = map[string]string{"REQUEST_METHOD": "GET", "REQUEST_URI": target, "SCRIPT_NAME": path, "SERVER_PROTOCOL": "HTTP/1.1",
		"SERVER_NAME": "example.org", "REMOTE_ADDR": "192.0.2.7", "REMOTE_PORT": "40000"}
	if _, q, ok := strings.Cut(target, "?"); ok {
		req.Params["QUERY_STRING"] = q
	}
	for k, v := range header {
		req.Params["HTTP_"+strings.ToUpper(strings.ReplaceAll(k, "-", "_"))] = strings.Join(v, ", ")
	}
	client, err := gofast.SimpleClientFactory(gofast.SimpleConnFactory("unix", ss.sock))()
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	resp, err := client.Do(req)
	if err != nil {
		t.Errorf("GET %s: %v", target, err)
		return w
	}
	if err := resp.WriteTo(w, io.Discard); err != nil {
		t.Errorf("GET %s: %v", target, err)
	}
	return w
}

// report reads the status page in JSON.
func (ss *statusServer) report(query string) statusReport {
	ss.t.Helper()
	w := ss.get("/status?json"+query, nil)
	var st statusReport
	if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil {
		ss.t.Fatalf("status page in JSON: %v: %q", err, w.Body)
	}
	return st
}

// waitReport reads the status page until ok says it is as wanted, and
// returns it; a request is counted once its handler returned, which may
// be after its client got the answer.
func (ss *statusServer) waitReport(what string, ok func(statusReport) bool) statusReport {
	ss.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := ss.report("")
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			ss.t.Fatalf("status page never showed %s: %+v", what, st)
		}
		time.Sleep(5 * time.Millisecond) // polling, with the deadline above
	}
}

// families parses an exposition with Prometheus's own parser.
func families(t *testing.T, w *httptest.ResponseRecorder) map[string]*dto.MetricFamily {
	t.Helper()
	return testenv.Families(t, w.Body.Bytes(), w.Header())
}

// sample returns the value of one sample of a family.
var sample = testenv.Sample

// TestStatusPage crosses the status page's counts in HTTP and FastCGI
// mode: after requests with known statuses, one refused past
// CGIRUN_MAX_REQUESTS and one past CGIRUN_MAX_URL_LENGTH, with one held
// in its handler, the three formats report them, as Prometheus's parser
// reads them, and ?full lists the held request.
func TestStatusPage(t *testing.T) {
	for _, mode := range []Mode{ModeHTTP, ModeFastCGI} {
		t.Run(string(mode), func(t *testing.T) {
			ss := startStatusServer(t, mode, map[string]string{"CGIRUN_MAX_REQUESTS": "1", "CGIRUN_MAX_URL_LENGTH": "64"})
			codes := map[int]int{200: 3, 404: 2, 500: 1, 302: 1}
			for code, n := range codes {
				for range n {
					if w := ss.get(fmt.Sprintf("/code/%d", code), nil); w.Code != code {
						t.Fatalf("GET /code/%d = %d", code, w.Code)
					}
				}
			}
			if w := ss.get("/"+strings.Repeat("a", 64), nil); w.Code != http.StatusRequestURITooLong {
				t.Fatalf("GET of a URI past CGIRUN_MAX_URL_LENGTH = %d, want 414", w.Code)
			}
			held := make(chan *httptest.ResponseRecorder, 1)
			go func() { held <- ss.get("/hold?x=1", nil) }()
			<-ss.held
			if w := ss.get("/code/200", nil); w.Code != http.StatusServiceUnavailable {
				t.Fatalf("GET past CGIRUN_MAX_REQUESTS = %d, want 503", w.Code)
			}
			// 7 answered by the handler, 1 refused (503): 8 in the
			// classes and the histogram.
			st := ss.waitReport("8 requests answered", func(st statusReport) bool { return st.RequestDuration.Count == 8 })
			wantResponses := map[string]uint64{"1xx": 0, "2xx": 3, "3xx": 1, "4xx": 2, "5xx": 2}
			for class, n := range wantResponses {
				if st.Responses[class] != n {
					t.Errorf("responses %s = %d, want %d (all: %v)", class, st.Responses[class], n, st.Responses)
				}
			}
			wantRejected := map[string]uint64{"max_requests": 1, "uri_too_long": 1, "header_too_large": 0, "timeout": 0}
			for reason, n := range wantRejected {
				if st.Rejected[reason] != n {
					t.Errorf("rejected %s = %d, want %d (all: %v)", reason, st.Rejected[reason], n, st.Rejected)
				}
			}
			if st.ActiveRequests != 1 || st.MaxActiveRequests < 2 || st.Mode != string(mode) || st.PID == 0 || st.Version == "" {
				t.Errorf("status = %+v, want 1 active, at least 2 at once, mode %s, a pid and a version", st, mode)
			}
			if last := st.RequestDuration.Buckets[len(st.RequestDuration.Buckets)-1]; last.LE != 10 || last.Count > 8 {
				t.Errorf("last bucket = %+v, want le 10 and at most 8", last)
			}

			full := ss.report("&full")
			if len(full.InFlight) != 1 || full.InFlight[0].URI != "/hold?x=1" || full.InFlight[0].Method != "GET" || full.InFlight[0].Remote == "" {
				t.Errorf("requests in flight = %+v, want GET /hold?x=1 with its remote address", full.InFlight)
			}
			if mode == ModeFastCGI && (len(full.InFlight) != 1 || full.InFlight[0].FastCGIRequestID == nil || *full.InFlight[0].FastCGIRequestID != 1) {
				t.Errorf("requests in flight = %+v, want FastCGI request id 1", full.InFlight)
			}
			text := ss.get("/status?full", nil)
			for _, want := range []string{"mode:                " + string(mode) + "\n", "responses 2xx:       3\n", "rejected max requests: 1\n",
				"active requests:     1\n", "duration count:      8\n", "************************\n", "request URI:         /hold?x=1\n"} {
				if !strings.Contains(text.Body.String(), want) {
					t.Errorf("status page in text lacks %q:\n%s", want, text.Body)
				}
			}

			for _, ask := range []struct {
				name        string
				target      string
				header      http.Header
				contentType string
			}{
				{"?openmetrics", "/status?openmetrics", nil, status.ContentTypeOpenMetrics},
				{"Accept: OpenMetrics", "/status", http.Header{"Accept": {"application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"}}, status.ContentTypeOpenMetrics},
				{"Accept: text 0.0.4", "/status", http.Header{"Accept": {"text/plain; version=0.0.4"}}, status.ContentTypeText},
			} {
				t.Run(ask.name, func(t *testing.T) {
					w := ss.get(ask.target, ask.header)
					if got := w.Header().Get("Content-Type"); got != ask.contentType {
						t.Fatalf("Content-Type = %q, want %q", got, ask.contentType)
					}
					if om := ask.contentType == status.ContentTypeOpenMetrics; om != strings.HasSuffix(w.Body.String(), "\n# EOF\n") {
						t.Errorf("page ends %q, want # EOF: %v", w.Body.String()[max(0, w.Body.Len()-20):], om)
					}
					fams := families(t, w)
					for class, n := range wantResponses {
						if got := sample(t, fams, "cgirun_responses", "class", class); got != float64(n) {
							t.Errorf("cgirun_responses_total{class=%q} = %v, want %d", class, got, n)
						}
					}
					for reason, n := range wantRejected {
						if got := sample(t, fams, "cgirun_requests_rejected", "reason", reason); got != float64(n) {
							t.Errorf("cgirun_requests_rejected_total{reason=%q} = %v, want %d", reason, got, n)
						}
					}
					if got := sample(t, fams, "cgirun_request_duration_seconds"); got != 8 {
						t.Errorf("cgirun_request_duration_seconds count = %v, want 8", got)
					}
					h := fams["cgirun_request_duration_seconds"].GetMetric()[0].GetHistogram()
					if b := h.GetBucket(); len(b) < len(status.Buckets) || b[0].GetUpperBound() != 0.005 || b[len(status.Buckets)-1].GetUpperBound() != 10 {
						t.Errorf("buckets = %v, want Prometheus's default bounds", b)
					}
					if got := sample(t, fams, "cgirun_requests_active"); got != 1 {
						t.Errorf("cgirun_requests_active = %v, want 1", got)
					}
					if got := sample(t, fams, "cgirun_build_info", "mode", string(mode)); got != 1 {
						t.Errorf("cgirun_build_info{mode=%q} = %v, want 1", mode, got)
					}
					if got := sample(t, fams, "cgirun_start_time_seconds"); math.Abs(got-float64(st.StartTime)) > 1 {
						t.Errorf("cgirun_start_time_seconds = %v, want %d", got, st.StartTime)
					}
				})
			}
			close(ss.release)
			if w := <-held; w.Code != http.StatusOK {
				t.Errorf("held request = %d, want 200", w.Code)
			}
			if st := ss.waitReport("nothing active", func(st statusReport) bool { return st.ActiveRequests == 0 }); len(ss.report("&full").InFlight) != 0 || st.RequestDuration.Count != 9 {
				t.Errorf("after the held request ended: %+v, want none in flight and 9 counted", st)
			}
		})
	}
}

// TestStatusPageRejected crosses the two bounds the monitor does not
// decide itself: CGIRUN_REQUEST_TIMEOUT (503) in both modes, and
// CGIRUN_MAX_HEADER_BYTES in FastCGI mode (431, answered by package
// fastcgi before any handler; over HTTP, net/http answers it and the
// status page does not see it).
func TestStatusPageRejected(t *testing.T) {
	tests := []struct {
		name   string
		mode   Mode
		env    map[string]string
		target string
		header http.Header
		code   int
		reason string
		class  string // "": the handler never ran
	}{
		{"http/timeout", ModeHTTP, map[string]string{"CGIRUN_REQUEST_TIMEOUT": "100ms"}, "/wait", nil, http.StatusServiceUnavailable, "timeout", "5xx"},
		{"fastcgi/timeout", ModeFastCGI, map[string]string{"CGIRUN_REQUEST_TIMEOUT": "100ms"}, "/wait", nil, http.StatusServiceUnavailable, "timeout", "5xx"},
		{"fastcgi/header too large", ModeFastCGI, map[string]string{"CGIRUN_MAX_HEADER_BYTES": "1024"}, "/code/200",
			http.Header{"X-Big": {strings.Repeat("a", 4096)}}, http.StatusRequestHeaderFieldsTooLarge, "header_too_large", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ss := startStatusServer(t, tt.mode, tt.env)
			if w := ss.get(tt.target, tt.header); w.Code != tt.code {
				t.Fatalf("GET %s = %d, want %d", tt.target, w.Code, tt.code)
			}
			st := ss.waitReport(tt.reason+" counted", func(st statusReport) bool { return st.Rejected[tt.reason] == 1 })
			var answered uint64
			if tt.class != "" {
				answered = 1
				if st.Responses[tt.class] != 1 {
					t.Errorf("responses = %v, want one %s", st.Responses, tt.class)
				}
			}
			if st.RequestDuration.Count != answered {
				t.Errorf("durations counted = %d, want %d", st.RequestDuration.Count, answered)
			}
		})
	}
}

// TestStatusPageCGI: a CGI program keeps no metrics, even with a status
// page, and a FastCGI or HTTP server with one does.
func TestStatusPageCGI(t *testing.T) {
	for _, mode := range []Mode{ModeCGI, ModeHTTP} {
		cfg := defaultConfig()
		cfg.StatusPath, cfg.HTTP, cfg.CGI = "/status", "127.0.0.1:0", mode == ModeCGI
		s := NewServer(cfg, http.NotFoundHandler(), Options{Logger: slog.New(slog.DiscardHandler)})
		if err := s.Listen(); err != nil {
			t.Fatal(err)
		}
		if s.Mode() != mode || (s.mon.metrics != nil) != (mode != ModeCGI) {
			t.Errorf("%s: metrics kept = %v, want %v", s.Mode(), s.mon.metrics != nil, mode != ModeCGI)
		}
		s.Close()
	}
}

// TestStatusPageIdleConns: a connection with no request in flight counts
// as idle, and stops counting while it carries one (HTTP: through
// http.Server's ConnState; FastCGI: open connections less active
// requests). The status page's own connection is open and not idle.
func TestStatusPageIdleConns(t *testing.T) {
	for _, mode := range []Mode{ModeHTTP, ModeFastCGI} {
		t.Run(string(mode), func(t *testing.T) {
			ss := startStatusServer(t, mode, nil)
			network, addr := "tcp", ""
			if mode == ModeFastCGI {
				network, addr = "unix", ss.sock
			} else {
				addr = ss.s.Addrs()[0].String()
			}
			c, err := net.Dial(network, addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			idle := func(n int64) func(statusReport) bool {
				return func(st statusReport) bool { return st.IdleConns == n && st.OpenConns == 2 }
			}
			ss.waitReport("one idle connection of two", idle(1))
			if mode == ModeFastCGI {
				return
			}
			// The idle connection carries a request, held in the handler.
			if _, err := io.WriteString(c, "GET /hold HTTP/1.1\r\nHost: example.org\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			<-ss.held
			ss.waitReport("no idle connection", idle(0))
			close(ss.release)
			if _, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil {
				t.Fatal(err)
			}
			ss.waitReport("the connection idle again, kept alive", idle(1))
		})
	}
}
