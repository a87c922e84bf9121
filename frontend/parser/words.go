package parser

import (
	"encoding/json"
	"strings"
)

// Words splits an instruction's argument text into words, the way
// Dockerfile COPY reads its sources: a JSON array of strings, or words
// separated by white space where quotes and the escape character keep a word
// together. Quotes stay in the words; variable expansion removes them later.
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
