package cgroupfs

import (
	"errors"
	"strings"
	"testing"
)

func TestParseUint(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want uint64
		err  error // nil: success
	}{
		{"value", "67108864\n", 67108864, nil},
		{"zero", "0\n", 0, nil},
		{"missing newline", "4096", 4096, nil},
		{"trailing spaces", "4096  \n", 4096, nil},
		{"leading space", " 4096\n", 4096, nil},
		{"crlf", "4096\r\n", 4096, nil},
		{"huge v1 value", "9223372036854771712\n", 9223372036854771712, nil},
		{"max uint64", "18446744073709551615\n", 18446744073709551615, nil},
		{"overflow", "18446744073709551616\n", 0, ErrInvalidValue},
		{"empty", "", 0, ErrEmpty},
		{"only newline", "\n", 0, ErrEmpty},
		{"max is not a number", "max\n", 0, ErrInvalidValue},
		{"negative", "-1\n", 0, ErrInvalidValue},
		{"plus sign", "+1\n", 0, ErrInvalidValue},
		{"garbage", "12ab\n", 0, ErrInvalidValue},
		{"two lines", "1\n2\n", 0, ErrInvalidValue},
		{"two fields", "1 2\n", 0, ErrInvalidValue},
		{"binary", "\x00\x01", 0, ErrInvalidValue},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseUint([]byte(tc.in))
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("ParseUint(%q) = %d, %v; want error %v", tc.in, got, err, tc.err)
				}
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("error %T is not *Error", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseUint(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestParseLimit(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want Limit
		err  error
	}{
		{"v2 max", "max\n", Limit{Unlimited: true}, nil},
		{"v2 max no newline", "max", Limit{Unlimited: true}, nil},
		{"v2 max trailing space", "max \n", Limit{Unlimited: true}, nil},
		{"number", "67108864\n", Limit{Bytes: 67108864}, nil},
		{"zero is a limit", "0\n", Limit{Bytes: 0}, nil},
		{"v1 no limit 4k pages", "9223372036854771712\n", Limit{Unlimited: true}, nil},
		{"v1 no limit 64k pages", "9223372036854710272\n", Limit{Unlimited: true}, nil},
		{"LONG_MAX", "9223372036854775807\n", Limit{Unlimited: true}, nil},
		{"large real limit", "1099511627776\n", Limit{Bytes: 1 << 40}, nil},
		{"just below threshold", "4611686018427387903\n", Limit{Bytes: 1<<62 - 1}, nil},
		{"empty", "", Limit{}, ErrEmpty},
		{"Max capitalised", "Max\n", Limit{}, ErrInvalidValue},
		{"maxx", "maxx\n", Limit{}, ErrInvalidValue},
		{"negative", "-1\n", Limit{}, ErrInvalidValue},
		{"garbage", "lots\n", Limit{}, ErrInvalidValue},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseLimit([]byte(tc.in))
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("ParseLimit(%q) = %+v, %v; want error %v", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseLimit(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
		})
	}
}

const v2Events = "low 0\nhigh 0\nmax 1873\noom 1\noom_kill 1\noom_group_kill 0\n"

const v1OOMControl = "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n"

const v1Stat = "cache 8409088\nrss 21430272\ninactive_file 4096\n" +
	"hierarchical_memory_limit 67108864\ntotal_inactive_file 8388608\ntotal_active_file 20480\n"

func TestParseKeyedValue(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    string
		key   string
		want  uint64
		found bool
		err   string // substring of the error; "" for none
	}{
		{"events max", v2Events, "max", 1873, true, ""},
		{"events oom", v2Events, "oom", 1, true, ""},
		{"events oom_kill", v2Events, "oom_kill", 1, true, ""},
		{"events low (first line)", v2Events, "low", 0, true, ""},
		{"events oom_group_kill (last line)", v2Events, "oom_group_kill", 0, true, ""},
		{"v1 oom_control", v1OOMControl, "oom_kill", 1, true, ""},
		{"v1 oom_control old kernel", "oom_kill_disable 0\nunder_oom 0\n", "oom_kill", 0, false, ""},
		{"prefix key is not the key", v1Stat, "total_inactive", 0, false, ""},
		{"suffix match is not the key", v1Stat, "inactive_file", 4096, true, ""},
		{"total_ key", v1Stat, "total_inactive_file", 8388608, true, ""},
		{"missing newline on last line", "a 1\nb 2", "b", 2, true, ""},
		{"trailing spaces", "a 1  \nb 2\n", "a", 1, true, ""},
		{"tab separated", "a\t7\n", "a", 7, true, ""},
		{"empty", "", "a", 0, false, ""},
		{"not there", "a 1\n", "b", 0, false, ""},
		{"blank lines", "\n\na 1\n", "a", 1, true, ""},
		{"huge value", "hierarchical_memory_limit 9223372036854771712\n", "hierarchical_memory_limit", 9223372036854771712, true, ""},
		{"bad value", "anon 1\nfile 2\ninactive_file x\n", "inactive_file", 0, true, `line 3: "inactive_file x": invalid value`},
		{"no value", "anon 1\ninactive_file\n", "inactive_file", 0, true, `line 2: "inactive_file": invalid value`},
		{"no value trailing space", "inactive_file \n", "inactive_file", 0, true, `line 1`},
		{"two values", "inactive_file 1 2\n", "inactive_file", 0, true, `invalid value`},
		{"negative", "inactive_file -4096\n", "inactive_file", 0, true, `invalid value`},
		{"garbage elsewhere is not looked at", "garbage!!\ninactive_file 5\n", "inactive_file", 5, true, ""},
		{"first of duplicates", "a 1\na 2\n", "a", 1, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, found, err := ParseKeyedValue([]byte(tc.in), tc.key)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseKeyedValue(%q, %q) = %d, %v, %v; want error containing %q", tc.in, tc.key, got, found, err, tc.err)
				}
				if !errors.Is(err, ErrInvalidValue) {
					t.Fatalf("error %v does not match ErrInvalidValue", err)
				}
				return
			}
			if err != nil || got != tc.want || found != tc.found {
				t.Fatalf("ParseKeyedValue(%q, %q) = %d, %v, %v; want %d, %v", tc.in, tc.key, got, found, err, tc.want, tc.found)
			}
		})
	}
}

func TestParseKeyedValueNoAlloc(t *testing.T) {
	data := []byte(v1Stat)
	if n := testing.AllocsPerRun(100, func() {
		if _, _, err := ParseKeyedValue(data, "total_inactive_file"); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("ParseKeyedValue allocates %v times per call", n)
	}
}

func TestErrorMessage(t *testing.T) {
	_, _, err := ParseKeyedValue([]byte("anon 1\nfile 2\ninactive_file x\n"), "inactive_file")
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%T is not *Error", err)
	}
	e.File = "docker/abc/memory.stat"
	const want = `cgroupfs: docker/abc/memory.stat line 3: "inactive_file x": invalid value`
	if got := err.Error(); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if got := (&Error{File: "docker/abc/memory.current", Err: ErrEmpty}).Error(); got != "cgroupfs: docker/abc/memory.current: empty file" {
		t.Fatalf("got %s", got)
	}
}

func FuzzParsers(f *testing.F) {
	for _, s := range []string{"", "max\n", "1\n", v2Events, v1Stat, "a\n", "inactive_file 18446744073709551616\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// Must never panic; errors must be *Error.
		for _, err := range []error{
			func() error { _, err := ParseUint(data); return err }(),
			func() error { _, err := ParseLimit(data); return err }(),
			func() error { _, _, err := ParseKeyedValue(data, "inactive_file"); return err }(),
		} {
			var e *Error
			if err != nil && !errors.As(err, &e) {
				t.Fatalf("%T is not *Error", err)
			}
		}
	})
}
