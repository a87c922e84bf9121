package integration

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/patchfile/patchfile/frontend/filelist"
	"github.com/stretchr/testify/require"
)

// Forging release images by hand, as someone with push access to the
// release repository (or a tool that rewrites configs) could: the
// frontend's own builds refuse dev.patchfile.* labels from a Patchfile's
// LABEL or base image, so these are written with go-containerregistry.

// forgedConfig is an image config as a JSON object, numbers kept as written.
type forgedConfig map[string]any

func (c forgedConfig) labels() map[string]any {
	cfg, _ := c["config"].(map[string]any)
	if cfg == nil {
		cfg = map[string]any{}
		c["config"] = cfg
	}
	l, _ := cfg["Labels"].(map[string]any)
	if l == nil {
		l = map[string]any{}
		cfg["Labels"] = l
	}
	return l
}

// editList decodes the release's file list, edits it and encodes it again.
func (c forgedConfig) editList(t *testing.T, edit func(m *filelist.List)) {
	t.Helper()
	s, _ := c["dev.patchfile.files"].(string)
	m, err := filelist.Decode(s)
	require.NoError(t, err)
	edit(m)
	enc, err := m.Encode()
	require.NoError(t, err)
	c["dev.patchfile.files"] = enc
}

// gzipBase64 encodes raw bytes as a file list field would be.
func gzipBase64(t *testing.T, raw []byte) string {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, err := zw.Write(raw)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return base64.StdEncoding.EncodeToString(b.Bytes())
}

// rawManifest is a manifest pushed as is.
type rawManifest struct {
	body      []byte
	mediaType types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.body, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mediaType, nil }

// forge pushes src (pinned, in dst's repository) with its config edited,
// as the tag dst, and returns dst's repository pinned by the new digest.
// The layers stay the same.
func forge(t *testing.T, src, dst string, edit func(c forgedConfig)) string {
	t.Helper()
	img := pullImage(t, src)
	c := forgedConfig{}
	dec := json.NewDecoder(bytes.NewReader(rawConfig(t, img)))
	dec.UseNumber()
	require.NoError(t, dec.Decode(&c))
	edit(c)
	cfg, err := json.Marshal(c)
	require.NoError(t, err)
	ref, err := name.ParseReference(dst, name.Insecure)
	require.NoError(t, err)
	require.NoError(t, remote.WriteLayer(ref.Context(), static.NewLayer(cfg, types.OCIConfigJSON)))

	body, err := img.RawManifest()
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(body, &m))
	m["config"].(map[string]any)["digest"] = fmt.Sprintf("sha256:%x", sha256.Sum256(cfg))
	m["config"].(map[string]any)["size"] = len(cfg)
	body, err = json.Marshal(m)
	require.NoError(t, err)
	mt, err := img.MediaType()
	require.NoError(t, err)
	require.NoError(t, remote.Put(ref, rawManifest{body: body, mediaType: mt}))
	return fmt.Sprintf("%s@sha256:%x", ref.Context().Name(), sha256.Sum256(body))
}

// copyImage pushes src (from any repository) to dst and returns it pinned;
// opts are the push's (credentials).
func copyImage(t *testing.T, src, dst string, opts ...remote.Option) string {
	t.Helper()
	img := pullImage(t, src)
	ref, err := name.ParseReference(dst, name.Insecure)
	require.NoError(t, err)
	require.NoError(t, remote.Write(ref, img, opts...))
	d, err := img.Digest()
	require.NoError(t, err)
	return ref.Context().Name() + "@" + d.String()
}
