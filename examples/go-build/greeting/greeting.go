// Package greeting says hello, with the name in title case
// (golang.org/x/text).
package greeting

import (
	"golang.org/x/text/cases"
	"golang.org/x/text/language"
)

// For returns the greeting for a name.
func For(name string) string {
	if name == "" {
		name = "world"
	}
	return "hello, " + cases.Title(language.English).String(name)
}
