module example.com/patchfile-go-example

go 1.22
