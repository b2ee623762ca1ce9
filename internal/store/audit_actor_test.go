package store

import (
	"reflect"
	"testing"
)

func TestWithActor(t *testing.T) {
	tests := []struct {
		name    string
		details map[string]any
		from    map[string]string
		want    map[string]any
	}{
		{"nothing to add", nil, map[string]string{"via": "", "transport": ""}, nil},
		{"added to none", nil, map[string]string{"via": "b", "transport": "http"}, map[string]any{"via": "b", "transport": "http"}},
		{"added beside", map[string]any{"path": "a.psd"}, map[string]string{"transport": "http"}, map[string]any{"path": "a.psd", "transport": "http"}},
		{"the details' own value stays", map[string]any{"via": "a"}, map[string]string{"via": "b"}, map[string]any{"via": "a"}},
	}
	for _, tt := range tests {
		var before map[string]any
		if tt.details != nil {
			before = map[string]any{}
			for k, v := range tt.details {
				before[k] = v
			}
		}
		if got := withActor(tt.details, tt.from); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
		if !reflect.DeepEqual(tt.details, before) {
			t.Errorf("%s: the caller's details changed: %v", tt.name, tt.details)
		}
	}
}
