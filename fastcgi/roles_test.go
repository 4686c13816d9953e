package fastcgi

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/yookoala/gofast"

	"github.com/cgirun/cgirun/bridge"
)

// roleHandler serves the three roles the way a real application would.
func roleHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := bridge.RequestOf(r)
		switch req.Role {
		case bridge.RoleAuthorizer:
			env := bridge.EnvironOf(r)
			if env.Get("FCGI_APACHE_ROLE") != "AUTHORIZER" && env.Get("FCGI_APACHE_ROLE") != "" {
				http.Error(w, "unexpected FCGI_APACHE_ROLE", http.StatusInternalServerError)
				return
			}
			if env.Get("REMOTE_USER") != "alice" || env.Get("REMOTE_PASSWD") != "secret" {
				http.Error(w, "Forbidden", http.StatusForbidden)
				return
			}
			bridge.SetVariable(w.Header(), "USER_LEVEL", "admin")
			w.WriteHeader(http.StatusOK)
		case bridge.RoleFilter:
			env := bridge.EnvironOf(r)
			body, _ := io.ReadAll(r.Body)
			data, err := io.ReadAll(req.Data)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, env.Get("FCGI_DATA_LENGTH")+" "+env.Get("FCGI_DATA_LAST_MOD")+" body="+string(body)+" data="+strings.ToUpper(string(data)))
		default:
			body, _ := io.ReadAll(r.Body)
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, req.Role.String()+" "+r.Method+" "+r.URL.Path+" "+string(body))
		}
	})
}

// gofastDo sends one request through gofast, an independent FastCGI client.
func gofastDo(t *testing.T, addr string, req *gofast.Request) *httptest.ResponseRecorder {
	t.Helper()
	client, err := gofast.SimpleClientFactory(gofast.SimpleConnFactory("unix", addr))()
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	var stderr bytes.Buffer
	if err := resp.WriteTo(rec, &stderr); err != nil {
		t.Fatalf("gofast: %v (stderr %q)", err, stderr.String())
	}
	return rec
}

func TestRolesThroughGofast(t *testing.T) {
	_, addr, _ := startServer(t, roleHandler(), nil)
	params := func(kv ...string) map[string]string {
		m := map[string]string{"REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_URI": "/"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name     string
		role     gofast.Role
		params   map[string]string
		stdin    string
		data     string
		status   int
		wantBody string
		header   http.Header
	}{
		{name: "responder POST", role: gofast.RoleResponder,
			params: params("REQUEST_METHOD", "POST", "REQUEST_URI", "/submit", "CONTENT_LENGTH", "5"), stdin: "hello",
			status: 200, wantBody: "RESPONDER POST /submit hello"},
		{name: "authorizer allows", role: gofast.RoleAuthorizer,
			params: params("FCGI_APACHE_ROLE", "AUTHORIZER", "REMOTE_USER", "alice", "REMOTE_PASSWD", "secret"),
			status: 200, header: http.Header{"Variable-User_level": {"admin"}}},
		{name: "authorizer denies", role: gofast.RoleAuthorizer,
			params: params("FCGI_APACHE_ROLE", "AUTHORIZER", "REMOTE_USER", "mallory", "REMOTE_PASSWD", "guess"),
			status: 403, wantBody: "Forbidden\n"},
		{name: "filter reads the data stream", role: gofast.RoleFilter,
			params: params("FCGI_DATA_LENGTH", "11", "FCGI_DATA_LAST_MOD", "1700000000"), data: "hello world",
			status: 200, wantBody: "11 1700000000 body= data=HELLO WORLD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := gofast.NewRequest(nil)
			req.Role = tt.role
			req.Params = tt.params
			req.Stdin = io.NopCloser(strings.NewReader(tt.stdin))
			if tt.data != "" {
				req.Data = io.NopCloser(strings.NewReader(tt.data))
			}
			rec := gofastDo(t, addr, req)
			if rec.Code != tt.status || rec.Body.String() != tt.wantBody {
				t.Errorf("answer = %d %q, want %d %q", rec.Code, rec.Body.String(), tt.status, tt.wantBody)
			}
			for k, v := range tt.header {
				if got := rec.Header().Values(k); strings.Join(got, ",") != strings.Join(v, ",") {
					t.Errorf("header %s = %q, want %q (all: %v)", k, got, v, rec.Header())
				}
			}
		})
	}
}

// TestAuthorizerVariableBytes checks the exact header line, which gofast
// canonicalises on reading: mod_authnz_fcgi takes the name as written.
func TestAuthorizerVariableBytes(t *testing.T) {
	_, addr, _ := startServer(t, roleHandler(), nil)
	rc := dialRaw(t, addr)
	b := beginRecord(1, roleAuthorizer, false)
	b = append(b, paramsRecords(1, "REQUEST_METHOD=GET", "REQUEST_URI=/", "REMOTE_USER=alice", "REMOTE_PASSWD=secret")...)
	// An authorizer has no body; STDIN sent anyway is ignored.
	b = appendStream(b, typeStdin, 1, []byte("ignored"))
	rc.send(append(b, appendStream(nil, typeStdin, 1, nil)...))
	got := rc.readResponses(1)[1]
	if !bytes.Contains(got.stdout, []byte("\r\nVariable-USER_LEVEL: admin\r\n")) || !bytes.HasPrefix(got.stdout, []byte("Status: 200 OK\r\n")) {
		t.Errorf("authorizer stream = %q, want Status 200 and Variable-USER_LEVEL", got.stdout)
	}
}
