// Command server is the example's app: a small HTTP server compiled in
// the Patchfile's build stage, with a dependency from the module proxy.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"

	"example.com/patchfile-go-build-example/greeting"
)

// version is set at build time: go build -ldflags "-X main.version=1.2.3".
var version = "dev"

func main() {
	addr := flag.String("addr", ":8080", "address to listen on")
	web := flag.String("web", "web", "directory of the static pages")
	showVersion := flag.Bool("version", false, "print the version and exit")
	hello := flag.String("hello", "", "print the greeting for a name and exit")
	flag.Parse()
	switch {
	case *showVersion:
		fmt.Printf("server %s\n", version)
		return
	case *hello != "":
		fmt.Println(greeting.For(*hello))
		return
	}
	if _, err := os.Stat(*web); err != nil {
		log.Fatalf("web directory: %v", err)
	}
	http.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, greeting.For(r.URL.Query().Get("name")))
	})
	http.Handle("/", http.FileServer(http.Dir(*web)))
	log.Printf("server %s listening on %s", version, *addr)
	log.Fatal(http.ListenAndServe(*addr, nil))
}
