// Package stactest checks a static STAC catalogue offline, for tests:
// every Collection and Item against the STAC JSON schemas vendored in
// stac/testdata/schemas (no network: each $ref URL is mapped to a file
// there), every link and asset href resolved to a file on disk.
package stactest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Schema URLs of the STAC 1.1.0 Collection and Item.
const (
	CollectionSchema = "https://schemas.stacspec.org/v1.1.0/collection-spec/json-schema/collection.json"
	ItemSchema       = "https://schemas.stacspec.org/v1.1.0/item-spec/json-schema/item.json"
)

// Checker validates STAC documents against the vendored schemas.
type Checker struct {
	collection, item *jsonschema.Schema
}

// loader maps schema URLs to the vendored files under dir and refuses
// any other URL, so a test never reaches the network.
type loader struct{ dir string }

func (l loader) Load(u string) (any, error) {
	var file string
	switch {
	case strings.HasPrefix(u, "https://schemas.stacspec.org/v1."):
		// .../v1.x.y/{item,collection}-spec/json-schema/NAME.json
		file = filepath.Join(l.dir, "stac-1.1.0", path.Base(u))
	case strings.HasPrefix(u, "https://geojson.org/schema/"):
		file = filepath.Join(l.dir, "geojson", path.Base(u))
	default:
		return nil, fmt.Errorf("schema %s is not vendored (no network in tests)", u)
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("schema %s: %w", u, err)
	}
	defer f.Close()
	return jsonschema.UnmarshalJSON(f)
}

// New compiles the Collection and Item schemas found in dir (the
// stac/testdata/schemas folder), asserting formats (date-time, iri...).
func New(dir string) (*Checker, error) {
	c := jsonschema.NewCompiler()
	c.UseLoader(loader{dir})
	c.AssertFormat()
	coll, err := c.Compile(CollectionSchema)
	if err != nil {
		return nil, err
	}
	item, err := c.Compile(ItemSchema)
	if err != nil {
		return nil, err
	}
	return &Checker{collection: coll, item: item}, nil
}

// ValidateItem validates one Item document.
func (c *Checker) ValidateItem(doc []byte) error { return validate(c.item, doc) }

// ValidateCollection validates one Collection document.
func (c *Checker) ValidateCollection(doc []byte) error { return validate(c.collection, doc) }

func validate(s *jsonschema.Schema, doc []byte) error {
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(string(doc)))
	if err != nil {
		return err
	}
	return s.Validate(v)
}

// Report is what Check found.
type Report struct {
	Items  int      // Items validated
	Assets []string // asset files, as resolved paths
}

// Check validates the Collection at collectionPath and every Item it
// links, and resolves every link and asset href (relative ones against
// the document's folder) to a file on disk. The first problem is returned.
func (c *Checker) Check(collectionPath string) (*Report, error) {
	b, err := os.ReadFile(collectionPath)
	if err != nil {
		return nil, err
	}
	if err := c.ValidateCollection(b); err != nil {
		return nil, fmt.Errorf("%s: %w", collectionPath, err)
	}
	var coll struct {
		Links []struct{ Rel, Href string }
	}
	if err := json.Unmarshal(b, &coll); err != nil {
		return nil, err
	}
	rep := &Report{}
	base := filepath.Dir(collectionPath)
	for _, l := range coll.Links {
		p, err := resolve(base, l.Href)
		if err != nil {
			return nil, fmt.Errorf("%s: link %s: %w", collectionPath, l.Rel, err)
		}
		if l.Rel != "item" {
			continue
		}
		ib, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		if err := c.ValidateItem(ib); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		var it struct {
			Links  []struct{ Rel, Href string }
			Assets map[string]struct{ Href string }
		}
		if err := json.Unmarshal(ib, &it); err != nil {
			return nil, err
		}
		for _, il := range it.Links {
			if _, err := resolve(filepath.Dir(p), il.Href); err != nil {
				return nil, fmt.Errorf("%s: link %s: %w", p, il.Rel, err)
			}
		}
		for k, a := range it.Assets {
			ap, err := resolve(filepath.Dir(p), a.Href)
			if err != nil {
				return nil, fmt.Errorf("%s: asset %s: %w", p, k, err)
			}
			rep.Assets = append(rep.Assets, ap)
		}
		rep.Items++
	}
	return rep, nil
}

// resolve turns a relative href into a path under base and checks that a
// regular file is there. Absolute URLs are refused: the catalogue must
// be movable.
func resolve(base, href string) (string, error) {
	u, err := url.Parse(href)
	if err != nil {
		return "", err
	}
	if u.IsAbs() || u.Host != "" || strings.HasPrefix(u.Path, "/") {
		return "", fmt.Errorf("href %q is not relative", href)
	}
	p := filepath.Join(base, filepath.FromSlash(u.Path))
	st, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("href %q: %w", href, err)
	}
	if !st.Mode().IsRegular() {
		return "", errors.New("href " + href + " is not a file")
	}
	return p, nil
}
