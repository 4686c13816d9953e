module github.com/cgirun/cgirun

go 1.26

require (
	github.com/coreos/go-systemd/v22 v22.7.0
	github.com/kelseyhightower/envconfig v1.4.0
	github.com/yookoala/gofast v0.8.0
	go.uber.org/goleak v1.3.0
)

require golang.org/x/tools v0.0.0-20200908211811-12e1bf57a112 // indirect
