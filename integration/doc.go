// Package integration tests cgirun against real web servers: nginx
// (FastCGI, SCGI, uwsgi), Apache 2.4 (mod_cgid, mod_proxy_fcgi, mod_fcgid,
// mod_authnz_fcgi, mod_proxy_scgi, mod_proxy_uwsgi), lighttpd (mod_scgi,
// both protocols) and fcgiwrap, as Debian packages them, and against
// Prometheus scraping the status page. Each test starts its own server in the
// foreground, listening on a free port of 127.0.0.1 or on a unix socket
// inside t.TempDir, with a configuration written into a temporary directory,
// and stops it by PID in t.Cleanup. Nothing is read from or written to
// /etc/apache2, /etc/nginx, /etc/lighttpd, /etc/prometheus or /var.
//
// A test whose server is not installed is skipped with a message, unless
// the environment variable CI is "true": CI installs the servers, so there a
// missing one is a failure. To run them:
//
//	sudo bash integration/install.sh   # apache2, nginx, fcgiwrap, ...
//	go test ./integration/
//	CI=true go test -count=1 -v ./integration/
//
// Running as root (as CI does), the servers' workers run as www-data, so the
// harness makes its temporary directories world-readable and its unix
// sockets world-writable. The tests need Linux (process groups, /proc,
// Pdeathsig) and Debian's paths (/usr/lib/apache2/modules,
// /etc/nginx/fastcgi_params).
package integration
