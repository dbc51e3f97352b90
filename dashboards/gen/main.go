// Command gen writes the exit137 dashboards as JSON files. `go generate
// ./dashboards` runs it in the dashboards directory:
//
//	go run ./gen [-out DIR]
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/exit137-exporter/exit137-exporter/dashboards"
)

func main() {
	out := flag.String("out", ".", "directory to write the dashboards to")
	flag.Parse()
	files, err := dashboards.Files(dashboards.DefaultConfig())
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		path := filepath.Join(*out, name)
		if err := os.WriteFile(path, files[name], 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
		fmt.Println("wrote", path)
	}
}
