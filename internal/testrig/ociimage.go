package testrig

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"runtime"
	"time"
)

// OCIImage is a one-layer image: a few files (a static binary, mostly)
// and the entrypoint that runs it. No registry is reached on the test
// machines, so images are written as OCI image-layout archives and
// imported with `ctr images import`.
type OCIImage struct {
	// Ref is the name containerd files it under (io.containerd.image.name),
	// fully qualified as the CRI normalises it: docker.io/library/x:tag.
	Ref        string
	Files      []OCIFile
	Entrypoint []string
}

// OCIFile is one regular file in the image's only layer.
type OCIFile struct {
	Path string // relative to the root, no leading slash
	Mode int64
	Data []byte
}

const (
	ociManifestType = "application/vnd.oci.image.manifest.v1+json"
	ociConfigType   = "application/vnd.oci.image.config.v1+json"
	ociLayerType    = "application/vnd.oci.image.layer.v1.tar"
)

type ociDescriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *ociPlatform      `json:"platform,omitempty"`
}

type ociPlatform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

type ociManifest struct {
	SchemaVersion int             `json:"schemaVersion"`
	MediaType     string          `json:"mediaType"`
	Config        ociDescriptor   `json:"config"`
	Layers        []ociDescriptor `json:"layers"`
}

type ociIndex struct {
	SchemaVersion int             `json:"schemaVersion"`
	Manifests     []ociDescriptor `json:"manifests"`
}

type ociConfig struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Config       struct {
		Entrypoint []string `json:"Entrypoint"`
	} `json:"config"`
	RootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

// ociEpoch stamps every file: the same image bytes on every build.
var ociEpoch = time.Unix(0, 0)

// WriteOCIArchive writes img as an OCI image-layout tar: oci-layout,
// index.json naming the image, and the blobs (layer, config, manifest)
// under blobs/sha256. The layer is uncompressed, so its digest is its
// diff id.
func WriteOCIArchive(w io.Writer, img OCIImage) error {
	layer, err := ociLayer(img.Files)
	if err != nil {
		return err
	}
	platform := ociPlatform{Architecture: runtime.GOARCH, OS: "linux"}
	var cfg ociConfig
	cfg.Architecture, cfg.OS = platform.Architecture, platform.OS
	cfg.Config.Entrypoint = img.Entrypoint
	cfg.RootFS.Type = "layers"
	cfg.RootFS.DiffIDs = []string{sha256Digest(layer)}
	config, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	manifest, err := json.Marshal(ociManifest{
		SchemaVersion: 2,
		MediaType:     ociManifestType,
		Config:        describe(ociConfigType, config),
		Layers:        []ociDescriptor{describe(ociLayerType, layer)},
	})
	if err != nil {
		return err
	}
	top := describe(ociManifestType, manifest)
	top.Platform = &platform
	top.Annotations = map[string]string{"io.containerd.image.name": img.Ref}
	index, err := json.Marshal(ociIndex{SchemaVersion: 2, Manifests: []ociDescriptor{top}})
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	entries := []struct {
		name string
		data []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", index},
		{"blobs/sha256/" + sha256Hex(layer), layer},
		{"blobs/sha256/" + sha256Hex(config), config},
		{"blobs/sha256/" + sha256Hex(manifest), manifest},
	}
	if err := writeTarDir(tw, "blobs/"); err != nil {
		return err
	}
	if err := writeTarDir(tw, "blobs/sha256/"); err != nil {
		return err
	}
	for _, e := range entries {
		if err := writeTarFile(tw, e.name, 0o644, e.data); err != nil {
			return err
		}
	}
	return tw.Close()
}

// ociLayer is the uncompressed tar of the image's files.
func ociLayer(files []OCIFile) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		if err := writeTarFile(tw, f.Path, f.Mode, f.Data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeTarDir(tw *tar.Writer, name string) error {
	return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: ociEpoch})
}

func writeTarFile(tw *tar.Writer, name string, mode int64, data []byte) error {
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: ociEpoch}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

func describe(mediaType string, blob []byte) ociDescriptor {
	return ociDescriptor{MediaType: mediaType, Digest: sha256Digest(blob), Size: int64(len(blob))}
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func sha256Digest(b []byte) string { return "sha256:" + sha256Hex(b) }
