//go:build linux

package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cgirun/cgirun"
)

// nginxSnippetStatus is the deploy snippet that gives the status page to
// this host alone; the test includes it as it is.
const nginxSnippetStatus = "examples/deploy/nginx-status.conf"

// prometheusScrapeTimeout bounds the wait for Prometheus to have scraped
// the status page (every second) and to answer with the series.
const prometheusScrapeTimeout = 60 * time.Second

// TestPrometheusScrapesStatus: Debian's Prometheus server scrapes the
// status page of a cgirun.Run program through nginx (nginx-status.conf,
// which lets 127.0.0.1 alone read it), in the OpenMetrics it asks for,
// and its HTTP API then gives back the program's series: the scrape is
// up, and cgirun_requests_total and the 2xx responses count the requests
// sent. Another loopback address gets 403 for the page.
func TestPrometheusScrapesStatus(t *testing.T) {
	bin := requireBinary(t, "prometheus")
	requireBinary(t, "nginx")
	requireFile(t, nginxFastCGIParams)

	sock := filepath.Join(sharedTempDir(t), "app.sock")
	checkSocketPath(t, sock)
	for k, v := range map[string]string{"CGIRUN_FASTCGI": "unix:" + sock, "CGIRUN_SOCKET_MODE": "0666", "CGIRUN_STATUS_PATH": "/status"} {
		t.Setenv(k, v)
	}
	cfg, err := cgirun.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	app := cgirun.NewServer(cfg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		cgirun.Options{Logger: slog.New(slog.DiscardHandler)})
	if err := app.Listen(); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- app.Serve() }()
	t.Cleanup(func() {
		app.Close()
		<-served
	})

	root := moduleRoot(t)
	srv := startNginx(t, nginxConfig{
		HTTP:   nginxUpstream(t, "unix:"+sock),
		Server: "include " + filepath.Join(root, nginxSnippetStatus) + ";\ninclude " + filepath.Join(root, nginxSnippetLocation) + ";\n",
	})
	const sent = 5
	for range sent {
		if resp, body := nginxGet(t, srv.URL("/"), nil, srv.ErrorLog); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET / = %d %q", resp.StatusCode, body)
		}
	}

	dir := t.TempDir()
	conf := filepath.Join(dir, "prometheus.yml")
	writeFile(t, conf, fmt.Sprintf(`# Written by integration/prometheus_test.go.
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: cgirun
    metrics_path: /status
    static_configs:
      - targets: ["127.0.0.1:%d"]
`, srv.Port), 0o644)
	api := startPrometheus(t, bin, conf, filepath.Join(dir, "data"))

	want := map[string]float64{
		`up{job="cgirun"}`:                                    1,
		`cgirun_requests_total{job="cgirun"}`:                 sent, // and the scrapes before
		`cgirun_responses_total{job="cgirun",class="2xx"}`:    sent,
		`cgirun_request_duration_seconds_count{job="cgirun"}`: sent,
	}
	for query, least := range want {
		got := prometheusValue(t, api, query, least)
		if query == `cgirun_responses_total{job="cgirun",class="2xx"}` && got != sent {
			t.Errorf("%s = %v, want %d: the status page's reads are not responses", query, got, sent)
		}
	}
	// Another address, 127.0.0.2 on the loopback, gets the application
	// and not the status page.
	other := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext}}
	for path, code := range map[string]int{"/status": http.StatusForbidden, "/status?openmetrics": http.StatusForbidden, "//status": http.StatusForbidden, "/": http.StatusOK} {
		resp, err := other.Get(srv.URL(path))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != code {
			t.Errorf("GET %s from 127.0.0.2 = %d, want %d", path, resp.StatusCode, code)
		}
	}
}

// startPrometheus starts Prometheus with conf and its data in data, on a
// free port of 127.0.0.1 (it takes no port 0), and returns the base URL of
// its API once it says it is ready.
func startPrometheus(t *testing.T, bin, conf, data string) string {
	t.Helper()
	var lastErr error
	for range startAttempts {
		port := freePort(t)
		base := fmt.Sprintf("http://127.0.0.1:%d", port)
		argv := []string{bin, "--config.file=" + conf, "--storage.tsdb.path=" + data, "--web.listen-address=" + fmt.Sprintf("127.0.0.1:%d", port)}
		out := filepath.Join(filepath.Dir(conf), "prometheus-"+strconv.Itoa(port)+".log")
		p := startProcess(t, "prometheus", argv, []string{serverPath, "LANG=C"}, out, false)
		lastErr = p.waitReady(func() error {
			resp, err := http.Get(base + "/-/ready")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("/-/ready: %s", resp.Status)
			}
			return nil
		})
		if lastErr == nil {
			return base
		}
		p.stop(t, false)
		t.Logf("prometheus: %v\n%s", lastErr, p.Output())
	}
	t.Fatalf("prometheus did not start: %v", lastErr)
	return ""
}

// prometheusValue asks Prometheus's API for query until it gives one
// series of at least least (Prometheus scrapes every second), within
// prometheusScrapeTimeout, and returns its value.
func prometheusValue(t *testing.T, api, query string, least float64) float64 {
	t.Helper()
	deadline := time.Now().Add(prometheusScrapeTimeout)
	var last string
	for {
		resp, err := http.Get(api + "/api/v1/query?query=" + url.QueryEscape(query))
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			Status string `json:"status"`
			Data   struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		last = string(b)
		if err := json.Unmarshal(b, &r); err != nil || r.Status != "success" {
			t.Fatalf("query %s: %v: %s", query, err, b)
		}
		if len(r.Data.Result) == 1 {
			s, _ := r.Data.Result[0].Value[1].(string)
			if v, err := strconv.ParseFloat(s, 64); err == nil && v >= least {
				return v
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus never gave %s >= %v within %v; last answer: %s", query, least, prometheusScrapeTimeout, last)
		}
		time.Sleep(200 * time.Millisecond) // polling Prometheus, with the deadline above
	}
}
