package serve

import "net/http"

// StatusRecorder notes the status and the body size of a response, for
// the access log. Flush and http.ResponseController reach the writer
// below it.
type StatusRecorder struct {
	http.ResponseWriter
	// Status is the final status sent: 200 until WriteHeader says
	// otherwise; interim 1xx codes are not final.
	Status int
	// Bytes counts the body bytes written.
	Bytes int64
	// Cut says the response was cut short: the client got its start and
	// not its end. The recorder's owner sets it when a handler fails.
	Cut         bool
	wroteHeader bool
}

// NewStatusRecorder returns a StatusRecorder on w.
func NewStatusRecorder(w http.ResponseWriter) *StatusRecorder {
	return &StatusRecorder{ResponseWriter: w, Status: http.StatusOK}
}

func (r *StatusRecorder) WriteHeader(code int) {
	if !r.wroteHeader && code >= 200 {
		r.Status, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *StatusRecorder) Write(p []byte) (int, error) {
	r.wroteHeader = true
	n, err := r.ResponseWriter.Write(p)
	r.Bytes += int64(n)
	return n, err
}

// Flush flushes the writer below, when it can.
func (r *StatusRecorder) Flush() {
	http.NewResponseController(r.ResponseWriter).Flush()
}

// Unwrap returns the writer below, for http.ResponseController.
func (r *StatusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
