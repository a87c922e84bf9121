package parser

import (
	"encoding/json"
	"strings"
)

// Words splits an instruction's argument text into words, the way
// Dockerfile COPY reads its sources: a JSON array of strings, or words
// separated by white space where quotes and the escape character keep a word
// together. Quotes stay in the words; variable expansion removes them later.
//
// An unquoted word starting with "#" begins a trailing comment, which ends
// the words: `APP . /app   # the application` has two. Dockerfiles have no
// trailing comments (a "#" in RUN is the shell's), but the instructions
// read here take paths and image references, where "#" cannot start a word
// that means anything, and Patchfiles are written with such comments.
func Words(rest string, escape rune) []string {
	rest = strings.TrimSpace(rest)
	if strings.HasPrefix(rest, "[") {
		var list []string
		if err := json.Unmarshal([]byte(rest), &list); err == nil {
			for i, w := range list {
				// JSON words are literal: quote them so expansion keeps them whole.
				list[i] = quoteWord(w)
			}
			return list
		}
	}
	var words []string
	for rest != "" {
		end := wordEnd(rest, escape, isWordSpace)
		if strings.HasPrefix(rest, "#") {
			break
		}
		words = append(words, rest[:end])
		rest = strings.TrimLeft(rest[end:], keywordSpace)
	}
	return words
}

// quoteWord wraps w in single quotes, which the shell lexer keeps verbatim.
func quoteWord(w string) string {
	if !strings.ContainsAny(w, "'\"$\\ \t") {
		return w
	}
	return "'" + strings.ReplaceAll(w, "'", `'"'"'`) + "'"
}
