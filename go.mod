module github.com/cgirun/cgirun

go 1.26
