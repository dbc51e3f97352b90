package systemd

import "strings"

// SplitShell splits a shell script (the argument of `sh -c`) into simple
// commands, each a list of words, with the shell's quoting: '…' is
// literal, "…" and bare words honour backslash escapes. Commands end at
// ; & | and newlines. It does not expand anything: a $VAR stays as
// written, and such a word names no container.
func SplitShell(script string) [][]string {
	var (
		cmds   [][]string
		words  []string
		word   strings.Builder
		inWord bool
	)
	endWord := func() {
		if inWord {
			words = append(words, word.String())
			word.Reset()
			inWord = false
		}
	}
	endCmd := func() {
		endWord()
		if len(words) > 0 {
			cmds = append(cmds, words)
			words = nil
		}
	}
	for i := 0; i < len(script); i++ {
		c := script[i]
		switch {
		case c == '\'':
			inWord = true
			end := strings.IndexByte(script[i+1:], '\'')
			if end < 0 {
				end = len(script) - i - 1
			}
			word.WriteString(script[i+1 : i+1+end])
			i += end + 1
		case c == '"':
			inWord = true
			for i++; i < len(script) && script[i] != '"'; i++ {
				if script[i] == '\\' && i+1 < len(script) && strings.IndexByte("\"\\$`\n", script[i+1]) >= 0 {
					i++
				}
				word.WriteByte(script[i])
			}
		case c == '\\' && i+1 < len(script):
			inWord = true
			i++
			if script[i] != '\n' {
				word.WriteByte(script[i])
			}
		case c == ' ' || c == '\t':
			endWord()
		case c == ';' || c == '&' || c == '|' || c == '\n':
			endCmd()
		default:
			inWord = true
			word.WriteByte(c)
		}
	}
	endCmd()
	return cmds
}
