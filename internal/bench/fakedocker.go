package bench

import (
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FakeDocker serves the part of the Docker API the exporter's Docker
// source uses (ping, version, info, events, list, inspect) for generated
// running containers, so that the real exporter binary can know thousands of
// containers by name without starting them. A replay (events with an
// until) is empty; the live event stream stays open and silent. It returns the --docker.host value and stops with the test.
func FakeDocker(tb testing.TB, ids []string) string {
	tb.Helper()
	started := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)
	list := make([]map[string]any, len(ids))
	inspect := make(map[string][]byte, len(ids))
	for i, id := range ids {
		name, image := ContainerName(i), "registry.example/bench:1.0"
		labels := map[string]string{"com.docker.compose.project": "bench", "com.docker.compose.service": "svc"}
		list[i] = map[string]any{"Id": id, "Names": []string{"/" + name}, "Image": image, "State": "running", "Labels": labels}
		body, err := json.Marshal(map[string]any{
			"Id": id, "Name": "/" + name,
			"Config": map[string]any{"Image": image, "Labels": labels},
			"State":  map[string]any{"Running": true, "Pid": 1000 + i, "StartedAt": started, "FinishedAt": "0001-01-01T00:00:00Z"},
		})
		if err != nil {
			tb.Fatal(err)
		}
		inspect[id] = body
	}
	listBody, err := json.Marshal(list)
	if err != nil {
		tb.Fatal(err)
	}
	root := tb.TempDir()
	mux := http.NewServeMux()
	mux.HandleFunc("/_ping", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		w.Header().Set("Ostype", "linux")
		_, _ = w.Write([]byte("OK"))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// Strip the API version the client negotiated: /v1.41/info → /info.
		path := r.URL.Path
		if rest, ok := strings.CutPrefix(path, "/v"); ok {
			if i := strings.IndexByte(rest, '/'); i >= 0 {
				path = rest[i:]
			}
		}
		w.Header().Set("Content-Type", "application/json")
		switch {
		case path == "/info":
			_ = json.NewEncoder(w).Encode(map[string]string{"DockerRootDir": root})
		case path == "/version":
			_ = json.NewEncoder(w).Encode(map[string]any{"Version": "20.10.24", "ApiVersion": "1.41",
				"Components": []map[string]string{{"Name": "Engine", "Version": "20.10.24"}}})
		case path == "/events":
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			if r.URL.Query().Get("until") != "" {
				return // a replay (the source drains it before listing): nothing happened
			}
			<-r.Context().Done()
		case path == "/containers/json":
			_, _ = w.Write(listBody)
		case strings.HasPrefix(path, "/containers/") && strings.HasSuffix(path, "/json"):
			body, ok := inspect[strings.TrimSuffix(strings.TrimPrefix(path, "/containers/"), "/json")]
			if !ok {
				w.WriteHeader(http.StatusNotFound)
				_, _ = w.Write([]byte(`{"message":"No such container"}`))
				return
			}
			_, _ = w.Write(body)
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"message":"not faked"}`))
		}
	})
	sock := filepath.Join(tb.TempDir(), "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	tb.Cleanup(func() { _ = srv.Close() })
	return "unix://" + sock
}
