#!/usr/bin/python3
"""A Python WSGI application run as a CGI script by the standard library's
wsgiref.handlers.CGIHandler (PEP 3333's run_with_cgi): the runner serves it
to nginx like any other CGI program.

    /          Hello from WSGI
    /echo      the request body, back
    /env/NAME  the CGI variable NAME
"""
from wsgiref.handlers import CGIHandler


def app(environ, start_response):
    path = environ.get("PATH_INFO", "") or "/"
    if path == "/echo":
        length = environ.get("CONTENT_LENGTH") or ""
        body = environ["wsgi.input"].read(int(length)) if length else environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [body]
    if path.startswith("/env/"):
        value = environ.get(path[len("/env/"):], "")
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
        return [value.encode("latin-1")]
    if path != "/":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"Not Found\n"]
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [b"Hello from WSGI\n"]


if __name__ == "__main__":
    CGIHandler().run(app)
