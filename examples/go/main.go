// Command server is the Go example's app: a small HTTP server, compiled
// outside the image (CGO_ENABLED=0 go build -trimpath -o bin/server .) and
// shipped as a file with APP.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
)

// version is set at build time: go build -ldflags "-X main.version=1.2.3".
var version = "dev"

func main() {
	addr := flag.String("addr", ":8080", "address to listen on")
	web := flag.String("web", "web", "directory of the static pages")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Printf("server %s\n", version)
		return
	}
	if _, err := os.Stat(*web); err != nil {
		log.Fatalf("web directory: %v", err)
	}
	http.HandleFunc("/version", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, version)
	})
	http.Handle("/", http.FileServer(http.Dir(*web)))
	log.Printf("server %s listening on %s", version, *addr)
	log.Fatal(http.ListenAndServe(*addr, nil))
}
