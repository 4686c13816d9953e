// Package bridge is the narrow waist of cgirun: every front end (CGI,
// FastCGI, HTTP) turns what it received into a Request, and every back end
// (a Go http.Handler, a CGI executable) answers it with a CGI response
// stream, as RFC 3875 (CGI/1.1) defines both.
//
// A Request carries the meta-variables (Environ) byte for byte, the body,
// and the FastCGI role and data stream. NewHTTPRequest maps it to an
// *http.Request (RFC 3875 section 4.1); HandlerResponder runs an
// http.Handler and writes its answer as "Status: 200 OK", header fields, an
// empty line and the body (section 6), holding the header block as long as
// it can so that a failing handler still gets a clean 500 and a complete
// body gets Content-Length; its ServeHTTP holds a net/http response by the
// same rules, so that a handler fails the same way behind a Go HTTP server,
// and Committer tells a wrapper whether the response has started.
// ReadResponse parses such a stream, for running
// CGI executables and for tests.
//
// Bytes are never decoded or re-encoded: Go strings carry raw bytes, which
// is PEP 3333's "bytes as latin-1" rule done natively. A PATH_INFO,
// QUERY_STRING or header value that is not UTF-8 reaches the handler byte
// for byte, and a response header leaves the same way.
//
// The package does no process or network I/O.
//
// Not supported: NPH ("non-parsed header") responses; in a CGI response
// stream, interim 1xx responses (dropped), trailers and HTTP/1.1 connection
// upgrades (101), which a CGI response cannot carry (HandlerResponder's
// ServeHTTP passes them to net/http); request bodies in "chunked" framing
// (the web server removes it).
package bridge
