package waf

import (
	"regexp"
	"strings"
)

// A message is text people write to people, several lines long, with
// commands on lines of their own or in Markdown code fences: a support
// ticket with the curl line that fails, an issue comment with a repro, a
// review comment with a diff. The CRS's command rules (and Rampart's cmdi
// pattern) read a command word at the start of a line as an injection
// after a line break, and in a shell a line break does separate commands:
// no argument from the value alone says such a line cannot run. What
// tells a message from an injection is the weight of the evidence, as for
// mixed text (shapes.go): shapeMessage takes the command rules' score
// back only when they are all the request set off (no SQL, XSS or other
// rule corroborates them), every value they matched is a message, and no
// message holds what a command injection is sent to do rather than what
// a person pastes to ask for help (dangerousShell: a pipe into a shell or
// an interpreter, a reverse shell, a command substitution, a read of
// /etc/passwd or of keys).
//
// messageText decides: at least 40 bytes with a line break; Markdown code
// fences (``` or ~~~ on a line of their own) closed; and, outside the
// fences, at least two sentence lines, or one when the code is fenced. A
// sentence line has two fields or more, three in four of them plain words
// (an inline code span counts as one), and ends with . ? ! or :.

// dangerousShell finds, anywhere in a value, what a command injection is
// sent to do.
var dangerousShell = regexp.MustCompile(`(?i)\|\s*(?:sudo\s+(?:-\S+\s+)*)?(?:(?:ba|z|da|k|c|tc|fi)?sh|python\d?|perl|ruby|php|node|lua)\b` +
	`|/dev/(?:tcp|udp)/|\b(?:nc|ncat|netcat)\b[^\n]*\s-[a-z]*[ec]\b|\b(?:ba)?sh\s+-i\b|\bmkfifo\b|\bsocat\b` +
	`|/etc/(?:passwd|shadow|sudoers|group)\b|/proc/self/|\.ssh/|\bid_(?:rsa|dsa|ecdsa|ed25519)\b` +
	`|\$\(|\bbase64\s+(?:-d|--decode)\b|\brm\s+-[a-z]*[rf][a-z]*\s+/|\b(?:chmod|chown)\s+[^\n]*\s/(?:etc|bin|usr|root)\b`)

// messageText reports whether v is a message.
func messageText(v string) bool {
	if len(v) < 40 || len(v) > 8192 || strings.IndexByte(v, '\n') < 0 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 && c != '\n' && c != '\r' && c != '\t' || c == 0x7f {
			return false
		}
	}
	if dangerousShell.MatchString(v) {
		return false
	}
	fenced, inFence, sentences := false, false, 0
	for _, line := range strings.Split(v, "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "```") || strings.HasPrefix(t, "~~~") {
			inFence = !inFence
			fenced = true
			continue
		}
		if inFence || t == "" {
			continue
		}
		if sentenceLine(t) {
			sentences++
		}
	}
	return !inFence && (sentences >= 2 || fenced && sentences >= 1)
}

// sentenceLine reports whether line (trimmed) reads as a sentence.
func sentenceLine(line string) bool {
	if !strings.ContainsRune(".?!:", rune(line[len(line)-1])) {
		return false
	}
	line = codeSpansAsWords(line) // an inline code span is one word
	fields, words := 0, 0
	for _, f := range strings.Fields(line) {
		f = strings.Trim(f, ".,!?:;()\"'")
		if f == "" {
			continue // punctuation alone
		}
		fields++
		if plainWord(f) {
			words++
		}
	}
	return fields >= 2 && words*4 >= fields*3
}

// commandDetection reports whether a rule match is a command injection
// finding: a CRS rule tagged attack-rce, or Rampart's value patterns
// (9500300) when every value it matched was found by the cmdi pattern.
func commandDetection(id int, tags []string, messages []string) bool {
	if id == rulePatterns {
		if len(messages) == 0 {
			return false
		}
		for _, m := range messages {
			if m != "Rampart: cmdi" {
				return false
			}
		}
		return true
	}
	return id < 1000000 && containsStr(tags, "attack-rce")
}

// rulePatterns is the rule that runs Rampart's value patterns.
const rulePatterns = 9500300
