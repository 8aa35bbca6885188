// Package tomlfile reads kroll's TOML configuration files strictly: a key
// the program does not know is an error (a typo must not silently become a
// default), and durations are Go durations that must be positive.
package tomlfile

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// MaxSize bounds a configuration file.
const MaxSize = 1 << 20

// Decode reads the TOML file at path into v, refusing unknown keys.
func Decode(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return DecodeData(path, data, v)
}

// DecodeData decodes data, the content of the TOML file at path (for
// messages), into v like Decode: for a caller that opened and checked the
// file itself.
func DecodeData(path string, data []byte, v any) error {
	if len(data) > MaxSize {
		return fmt.Errorf("config %s: %d bytes, limit is %d", path, len(data), MaxSize)
	}
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(v)
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return fmt.Errorf("config %s: unknown keys: %s", path, strings.Join(keys, ", "))
	}
	return nil
}

// Duration is a positive Go duration written as a string ("30s", "5m").
type Duration struct{ time.Duration }

// UnmarshalText parses a duration and refuses zero or negative ones.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	if v <= 0 {
		return fmt.Errorf("duration %s must be positive", b)
	}
	d.Duration = v
	return nil
}
