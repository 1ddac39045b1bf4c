package oslo

import "time"

// FormatTimestamp returns t as a notification's timestamp: the naive UTC
// form Python's str(datetime) writes, "2026-11-27 00:13:30.106163", with the
// fraction (microseconds, truncated) left out entirely when it is zero:
// "2024-01-02 03:04:05".
func FormatTimestamp(t time.Time) string {
	t = t.UTC()
	b := make([]byte, 0, len("2006-01-02 15:04:05.000000"))
	b = t.AppendFormat(b, "2006-01-02 15:04:05")
	if us := t.Nanosecond() / 1000; us != 0 {
		b = append(b, '.')
		for div := 100000; div > 0; div /= 10 {
			b = append(b, byte('0'+us/div%10))
		}
	}
	return string(b)
}

// ParseTimestamp parses a notification's timestamp, "YYYY-MM-DD
// HH:MM:SS[.ffffff]" in UTC. As a courtesy it also takes a T for the space,
// one to nine fraction digits, and a trailing Z or ±HH:MM offset (the ISO
// form kombu writes for datetimes). The result is in UTC. Errors wrap
// ErrMalformed.
func ParseTimestamp(s string) (time.Time, error) {
	bad := func(why string) (time.Time, error) {
		return time.Time{}, malformed("timestamp %q %s, want YYYY-MM-DD HH:MM:SS[.ffffff]", s, why)
	}
	const base = len("2006-01-02 15:04:05")
	if len(s) < base {
		return bad("is too short")
	}
	if s[4] != '-' || s[7] != '-' || (s[10] != ' ' && s[10] != 'T') || s[13] != ':' || s[16] != ':' {
		return bad("has a wrong separator")
	}
	var f [6]int
	for i, at := range [...]int{0, 5, 8, 11, 14, 17} {
		width := 2
		if i == 0 {
			width = 4
		}
		v, ok := digits(s[at : at+width])
		if !ok {
			return bad("has a non-digit")
		}
		f[i] = v
	}
	rest := s[base:]
	nsec := 0
	if len(rest) > 0 && rest[0] == '.' {
		n := 1
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n == 1 || n > 10 {
			return bad("has a fraction of other than 1 to 9 digits")
		}
		v, _ := digits(rest[1:n])
		for i := n - 1; i < 9; i++ {
			v *= 10
		}
		nsec, rest = v, rest[n:]
	}
	offset := 0
	switch {
	case rest == "" || rest == "Z":
	case len(rest) == len("+00:00") && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		h, ok1 := digits(rest[1:3])
		m, ok2 := digits(rest[4:6])
		if !ok1 || !ok2 || h > 23 || m > 59 {
			return bad("has a bad zone offset")
		}
		offset = (h*60 + m) * 60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return bad("has trailing text")
	}
	t := time.Date(f[0], time.Month(f[1]), f[2], f[3], f[4], f[5], nsec, time.UTC)
	if t.Year() != f[0] || int(t.Month()) != f[1] || t.Day() != f[2] ||
		t.Hour() != f[3] || t.Minute() != f[4] || t.Second() != f[5] {
		return bad("is not a valid date and time")
	}
	return t.Add(-time.Duration(offset) * time.Second), nil
}

// digits parses a string of ASCII digits.
func digits(s string) (int, bool) {
	v := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		v = v*10 + int(s[i]-'0')
	}
	return v, true
}
