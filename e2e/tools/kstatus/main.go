// kstatus prints what sigs.k8s.io/cli-utils' kstatus (used by Flux, kpt and
// `kubectl wait`-style tools) computes for each object read from stdin: a JSON
// object, or a List with items. One JSON line per object: {"status", "message"}.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	data, err := io.ReadAll(in)
	if err != nil {
		return err
	}
	// UnmarshalJSON keeps integers as int64, as client-go decodes them.
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(data); err != nil {
		return fmt.Errorf("reading an object: %w", err)
	}
	objects := []unstructured.Unstructured{*obj}
	if obj.IsList() {
		list, err := obj.ToList()
		if err != nil {
			return err
		}
		objects = list.Items
	}
	encoder := json.NewEncoder(out)
	for i := range objects {
		result, err := status.Compute(&objects[i])
		if err != nil {
			return err
		}
		line := map[string]string{"status": result.Status.String(), "message": result.Message}
		if err := encoder.Encode(line); err != nil {
			return err
		}
	}
	return nil
}
