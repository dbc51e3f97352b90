package testrig

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"testing"
)

// readTar returns a tar's regular files by name.
func readTar(t *testing.T, data []byte) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[hdr.Name] = b
		}
	}
}

func TestWriteOCIArchive(t *testing.T) {
	img := OCIImage{
		Ref:        "docker.io/library/x:test",
		Files:      []OCIFile{{Path: "helper", Mode: 0o755, Data: []byte("#!binary")}},
		Entrypoint: []string{"/helper"},
	}
	var buf bytes.Buffer
	if err := WriteOCIArchive(&buf, img); err != nil {
		t.Fatal(err)
	}
	files := readTar(t, buf.Bytes())
	blob := func(d ociDescriptor) []byte {
		t.Helper()
		b, ok := files["blobs/sha256/"+d.Digest[len("sha256:"):]]
		if !ok {
			t.Fatalf("no blob for %s", d.Digest)
		}
		if sha256Digest(b) != d.Digest || int64(len(b)) != d.Size {
			t.Fatalf("blob %s: digest %s, size %d (descriptor says %d)", d.Digest, sha256Digest(b), len(b), d.Size)
		}
		return b
	}

	if string(files["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout = %q", files["oci-layout"])
	}
	var index ociIndex
	if err := json.Unmarshal(files["index.json"], &index); err != nil {
		t.Fatal(err)
	}
	if len(index.Manifests) != 1 {
		t.Fatalf("index has %d manifests, want 1", len(index.Manifests))
	}
	top := index.Manifests[0]
	if got := top.Annotations["io.containerd.image.name"]; got != img.Ref {
		t.Errorf("image name = %q, want %q", got, img.Ref)
	}
	if top.Platform == nil || top.Platform.OS != "linux" {
		t.Errorf("platform = %+v, want linux", top.Platform)
	}
	var manifest ociManifest
	if err := json.Unmarshal(blob(top), &manifest); err != nil {
		t.Fatal(err)
	}
	var cfg ociConfig
	if err := json.Unmarshal(blob(manifest.Config), &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Config.Entrypoint) != 1 || cfg.Config.Entrypoint[0] != "/helper" {
		t.Errorf("entrypoint = %q", cfg.Config.Entrypoint)
	}
	if len(manifest.Layers) != 1 || len(cfg.RootFS.DiffIDs) != 1 || cfg.RootFS.DiffIDs[0] != manifest.Layers[0].Digest {
		t.Fatalf("layers %+v, diff ids %q: want one uncompressed layer whose digest is its diff id", manifest.Layers, cfg.RootFS.DiffIDs)
	}
	layer := readTar(t, blob(manifest.Layers[0]))
	if string(layer["helper"]) != "#!binary" {
		t.Errorf("layer files = %v, want helper", layer)
	}

	var again bytes.Buffer
	if err := WriteOCIArchive(&again, img); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Error("two writes of one image differ: the archive must be reproducible")
	}
}
