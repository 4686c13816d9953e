// Command stream sends Server-Sent Events through whatever gateway
// cgirun.Run finds. GET / is a page that shows the events of /events, which
// sends "data: <n> <RFC3339 time>" once a second, flushed each time, until
// the client leaves or ?n= events were sent (default 10, at most 1000).
//
// Alone, over plain HTTP on 127.0.0.1:8080:
//
//	go run ./examples/stream
//	curl -N 'http://127.0.0.1:8080/events?n=3'
//
// Behind nginx, start it with CGIRUN_FASTCGI=unix:/run/cgirun/app.sock and
// give nginx examples/deploy/nginx-upstream.conf and nginx-fastcgi.conf as
// they are: the response header "X-Accel-Buffering: no" stops nginx
// buffering the events. On SIGTERM, streams in flight run to their end
// within CGIRUN_SHUTDOWN_GRACE.
package main

import (
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/cgirun/cgirun"
	"github.com/cgirun/cgirun/bridge"
)

// Bounds on ?n=, the number of events of one response.
const (
	defaultEvents = 10
	maxEvents     = 1000
)

// interval is the time between two events.
const interval = time.Second

// page opens an EventSource on the events URL it is given, and stops when
// the stream ends rather than let the browser reconnect for ever.
var page = template.Must(template.New("page").Parse(`<!doctype html>
<meta charset="utf-8">
<title>cgirun stream</title>
<h1>Server-Sent Events</h1>
<ol id="events"></ol>
<script>
const list = document.getElementById("events");
const source = new EventSource({{.}});
source.onmessage = (e) => {
	const item = document.createElement("li");
	item.textContent = e.data;
	list.append(item);
};
source.onerror = () => source.close();
</script>
`))

func handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		// ScriptName is the mount point: /cgi-bin/stream as CGI, "" at
		// the root of nginx or over plain HTTP.
		if err := page.Execute(w, bridge.ScriptName(r)+"/events"); err != nil {
			slog.Warn("stream: writing the page", "remote", r.RemoteAddr, "err", err)
		}
	})
	mux.HandleFunc("GET /events", events)
	return mux
}

// events streams the events of one response.
func events(w http.ResponseWriter, r *http.Request) {
	n := defaultEvents
	if s := r.URL.Query().Get("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > maxEvents {
			http.Error(w, fmt.Sprintf("n=%q: want a number of events from 1 to %d", s, maxEvents), http.StatusBadRequest)
			return
		}
		n = v
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: pass each event on at once
	rc := http.NewResponseController(w)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for i := 1; ; i++ {
		if _, err := fmt.Fprintf(w, "data: %d %s\n\n", i, time.Now().Format(time.RFC3339)); err != nil {
			return // the client left
		}
		if err := rc.Flush(); err != nil {
			return
		}
		if i == n {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
	}
}

func main() {
	if err := cgirun.Run(handler()); err != nil {
		fmt.Fprintln(os.Stderr, "stream:", err)
		os.Exit(1)
	}
}
