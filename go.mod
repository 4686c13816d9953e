module github.com/cgirun/cgirun

go 1.26.0

require (
	github.com/coreos/go-systemd/v22 v22.7.0
	github.com/kelseyhightower/envconfig v1.4.0
	github.com/prometheus/client_model v0.6.3
	github.com/prometheus/common v0.74.0
	github.com/yookoala/gofast v0.8.0
	go.uber.org/goleak v1.3.0
)

require (
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/pandatix/go-abnf v0.5.5 // indirect
	golang.org/x/tools v0.0.0-20200908211811-12e1bf57a112 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)
