package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// inspect prints an image's layers (size, digest, the history entry that
// made each) and its labels, reading only the manifest and config from the
// registry. With other, each layer is marked shared with other or new.
func inspect(ref string, other ...string) error {
	img, digest, err := fetch(ref)
	if err != nil {
		return err
	}
	manifest, err := img.Manifest()
	if err != nil {
		return err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	shared := map[v1.Hash]bool{}
	for _, o := range other {
		oimg, _, err := fetch(o)
		if err != nil {
			return err
		}
		om, err := oimg.Manifest()
		if err != nil {
			return err
		}
		for _, l := range om.Layers {
			shared[l.Digest] = true
		}
	}
	var createdBy []string
	for _, h := range cfg.History {
		if !h.EmptyLayer {
			createdBy = append(createdBy, h.CreatedBy)
		}
	}
	fmt.Printf("%s@%s (config %s)\n", strings.SplitN(ref, "@", 2)[0], digest, size(manifest.Config.Size))
	var total int64
	for i, l := range manifest.Layers {
		total += l.Size
		mark := ""
		if len(other) > 0 {
			mark = "new    "
			if shared[l.Digest] {
				mark = "shared "
			}
		}
		by := ""
		if i < len(createdBy) {
			by = createdBy[i]
			if len(by) > 60 {
				by = by[:57] + "..."
			}
		}
		fmt.Printf("  layer %d  %s%9s  %s  %s\n", i+1, mark, size(l.Size), l.Digest, by)
	}
	fmt.Printf("  %d layers, %s compressed\n", len(manifest.Layers), size(total))
	fmt.Println("  labels:")
	for _, k := range slices.Sorted(maps.Keys(cfg.Config.Labels)) {
		fmt.Printf("    %s=%s\n", k, cfg.Config.Labels[k])
	}
	return nil
}

// fetch reads an image (linux/amd64 of an index) from a plain-HTTP registry.
func fetch(ref string) (v1.Image, v1.Hash, error) {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	img, err := remote.Image(r)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	d, err := img.Digest()
	return img, d, err
}

func size(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
