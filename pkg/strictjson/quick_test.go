package strictjson

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// quickTargets are the shapes quickCheck and the walker are compared on.
var quickTargets = []reflect.Type{
	reflect.TypeFor[doc](),
	reflect.TypeFor[*doc](),
	reflect.TypeFor[[]item](),
	reflect.TypeFor[map[string]item](),
	reflect.TypeFor[any](),
	reflect.TypeFor[json.RawMessage](),
}

// quickSeeds are documents on both sides of every check.
var quickSeeds = []string{
	`{}`, ` {} `, `[]`, `null`, `1`, `"s"`, `true`,
	`{"id":"a","items":[{"name":"x","size":1}],"nested":{"name":"n","size":2},"when":"2026-01-01T00:00:00Z","raw":{"x":[1]},"labels":{"A":"b"},"any":{"k":[{"z":1}]},"-":"d","Untag":"u"}`,
	`{"id":"a","id":"b"}`, `{"id":"a","\u0069d":"b"}`, `{"i\"d":1}`, `{"extra":1}`, `{"ID":"a"}`,
	`{"items":[{"name":"a","name":"b"}]}`, `{"items":[{"name":"x"},{"name":"y","sha":"z"}]}`,
	`{"labels":{"a":"1","a":"2"}}`, `{"any":{"k":1,"k":2}}`, `{"raw":{"k":1,"k":2}}`,
	`{"nested":{"bogus":true}}`, `{"Skipped":"x"}`, `{"-":"x"}`, `{"x":{"name":"a"},"y":{"size":1,"size":2}}`,
	`{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"k":11,"l":12,"m":13,"n":14,"o":15,"p":16,"q":17,"a":18}`,
	`{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"k":11,"l":12,"m":13,"n":14,"o":15,"p":16,"q":17,"r":18}`,
	`[{"name":"a"},{"size":-1.5e3}, {"name":"\\\"q"} ]`,
	strings.Repeat(`[`, MaxDepth) + strings.Repeat(`]`, MaxDepth),
	strings.Repeat(`[`, MaxDepth+1) + strings.Repeat(`]`, MaxDepth+1),
	`{"any":` + strings.Repeat(`{"a":`, MaxDepth-2) + `1` + strings.Repeat(`}`, MaxDepth-2) + `}`,
	`{"any":` + strings.Repeat(`{"a":`, MaxDepth) + `1` + strings.Repeat(`}`, MaxDepth) + `}`,
}

func TestQuickCheckAgreesWithWalker(t *testing.T) {
	for _, s := range quickSeeds {
		for _, typ := range quickTargets {
			quickAgrees(t, []byte(s), typ)
		}
	}
}

func FuzzQuickCheck(f *testing.F) {
	for _, s := range quickSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			return
		}
		for _, typ := range quickTargets {
			quickAgrees(t, data, typ)
		}
	})
}

// quickAgrees checks that quickCheck passes valid JSON data exactly when
// the walker finds nothing wrong with it.
func quickAgrees(t *testing.T, data []byte, typ reflect.Type) {
	t.Helper()
	if !json.Valid(data) {
		t.Fatalf("seed %s is not valid JSON", data)
	}
	quick := quickCheck(nil, data, typ)
	var d Decoder
	if again := quickCheck(&d, data, typ) && quickCheck(&d, data, typ); again != quick {
		t.Fatalf("%s into %s: quickCheck with a Decoder's memory %v, without %v", data, typ, again, quick)
	}
	err := walk(data, typ)
	if quick != (err == nil) {
		t.Fatalf("%s into %s: quickCheck %v, walker %v", data, typ, quick, err)
	}
}

func BenchmarkDecodeHeartbeatShape(b *testing.B) {
	type policy struct {
		ID      string `json:"id"`
		Version int64  `json:"version"`
		State   string `json:"state"`
	}
	type view struct {
		Alive, Dead, Draining, Rebooting int
	}
	type beat struct {
		HostID, Datacenter, KernelLine, Kernel, Phase, BootID, GossipAddr, DesiredVersion string
		Policies                                                                          []policy
		View                                                                              *view
	}
	data := []byte(`{"HostID":"h000123","Datacenter":"dc123","KernelLine":"6.1","Kernel":"6.1.0-47-amd64","Phase":"idle","BootID":"0000007b-6b3c-4d2e-9f1a-00004a3c1b2f","Policies":[{"id":"copy-fail-af-alg","version":3,"state":"enforcing"},{"id":"userns-create-audit","version":1,"state":"auditing"}],"View":{"Alive":304,"Dead":0,"Draining":0,"Rebooting":0},"GossipAddr":"10.0.0.123:7946","DesiredVersion":"5f1c2a9e0b7d4c3a8e6f1b2d9c0a7e5f3b1d8c6a4e2f0b9d7c5a3e1f8b6d4c2a"}`)
	var d Decoder
	for _, bc := range []struct {
		name   string
		decode func([]byte, int, any) error
	}{{"Decode", Decode}, {"Decoder", d.Decode}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var v beat
				if err := bc.decode(data, 1<<16, &v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
