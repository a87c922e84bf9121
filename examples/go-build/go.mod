module example.com/patchfile-go-build-example

go 1.24

require golang.org/x/text v0.28.0
