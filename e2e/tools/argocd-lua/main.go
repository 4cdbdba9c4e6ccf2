// Command argocd-lua runs serin's Argo CD health check and actions the way
// Argo CD runs the Lua customizations of argocd-cm (argo-cd util/lua/lua.go,
// server/application/application.go), so serin's tests exercise Argo CD's
// runtime and not a stand-in:
//
//   - gopher-lua (the version Argo CD pins) without the standard libraries,
//     then package, base and table opened; os only through require("os"),
//     which gives time and date. No string or math library, so strings have
//     no methods either.
//   - obj is the object as a client decodes it from the API server's JSON
//     (integers as int64, other numbers float64), turned into Lua tables;
//     JSON null leaves a key out; actionParams is an empty table.
//   - one second to run, the script's last return value is the result.
//   - results are encoded with layeh.com/gopher-json, as Argo CD does (an empty
//     table becomes []), and decoded as Argo CD decodes them.
//
// Usage (the object is read from stdin as JSON):
//
//	argocd-lua health HEALTH_LUA              prints {"status": ..., "message": ...}
//	argocd-lua discovery ACTIONS_DIR          prints the actions, sorted by name
//	argocd-lua action ACTIONS_DIR NAME        prints what the action returns
//	argocd-lua requests ACTIONS_DIR NAME      prints the API requests Argo CD sends
//	argocd-lua test ARGOCD_DIR                runs ARGOCD_DIR/test/fixtures.lua
//	argocd-lua fixtures ARGOCD_DIR            prints each fixture's object as JSON, one a line
//
// A Lua error, a result Argo CD refuses, or bad input exits 1 with the error.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	jsonpatch "github.com/evanphx/json-patch"
	lua "github.com/yuin/gopher-lua"
	luajson "layeh.com/gopher-json"
)

// Argo CD gives each script a second (runLuaWithResourceActionParameters).
const scriptTimeout = time.Second

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "argocd-lua:", err)
		os.Exit(1)
	}
}

func run(args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: argocd-lua health|discovery|action|requests|test|fixtures ...")
	}
	cmd, args := args[0], args[1:]
	need := map[string]int{"health": 1, "discovery": 1, "action": 2, "requests": 2, "test": 1, "fixtures": 1}
	n, ok := need[cmd]
	if !ok {
		return fmt.Errorf("unknown command %q", cmd)
	}
	if len(args) != n {
		return fmt.Errorf("%s takes %d argument(s), got %d", cmd, n, len(args))
	}
	if cmd == "fixtures" {
		return printFixtures(args[0], stdout)
	}
	if cmd == "test" {
		failed, err := runFixtures(args[0], stdout)
		if err != nil {
			return err
		}
		if failed > 0 {
			return fmt.Errorf("%d check(s) failed", failed)
		}
		return nil
	}

	input, err := io.ReadAll(stdin)
	if err != nil {
		return err
	}
	live, err := decodeObject(input)
	if err != nil {
		return fmt.Errorf("reading the object from stdin: %w", err)
	}
	var out any
	switch cmd {
	case "health":
		out, err = healthOf(args[0], live)
	case "discovery":
		out, err = discoveryOf(filepath.Join(args[0], "discovery.lua"), live)
	case "action":
		var res *actionResult
		if res, err = actionOf(actionPath(args[0], args[1]), live); err == nil {
			out = res.printable()
		}
	case "requests":
		var res *actionResult
		if res, err = actionOf(actionPath(args[0], args[1]), live); err == nil {
			out, err = requestsFor(live, res)
		}
	}
	if err != nil {
		return err
	}
	return printJSON(stdout, out)
}

func actionPath(dir, name string) string {
	return filepath.Join(dir, name, "action.lua")
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// decodeObject decodes JSON as k8s.io/apimachinery does for an unstructured
// object: integers that fit become int64, other numbers float64.
func decodeObject(data []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("more than one JSON value")
	}
	obj, ok := convertNumbers(v).(map[string]any)
	if !ok {
		return nil, errors.New("not a JSON object")
	}
	return obj, nil
}

func convertNumbers(v any) any {
	switch t := v.(type) {
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i
		}
		f, err := t.Float64()
		if err != nil {
			return t.String()
		}
		return f
	case []any:
		for i := range t {
			t[i] = convertNumbers(t[i])
		}
	case map[string]any:
		for k := range t {
			t[k] = convertNumbers(t[k])
		}
	}
	return v
}

// The VM -------------------------------------------------------------------

// osFunctions are gopher-lua's own os.time and os.date, the two functions
// Argo CD's safe os module offers (util/lua/oslib_safe.go copies them).
var osFunctions = func() map[string]lua.LGFunction {
	scratch := lua.NewState()
	defer scratch.Close()
	out := map[string]lua.LGFunction{}
	for _, name := range []string{"time", "date"} {
		out[name] = scratch.GetField(scratch.GetGlobal("os"), name).(*lua.LFunction).GFunction
	}
	return out
}()

// safeOsLoader is the loader behind require("os").
func safeOsLoader(L *lua.LState) int {
	L.Push(L.SetFuncs(L.NewTable(), osFunctions))
	return 1
}

// openNothing stands for Argo CD's opener of its safe os library: that opener
// registers its functions under the name "table", which already holds the
// table library, and gopher-lua then adds nothing. So the global os stays
// nil; only require("os") reaches time and date.
func openNothing(*lua.LState) int { return 0 }

// newState is a Lua state set up as Argo CD sets one up for a script from
// argocd-cm (health.lua.useOpenLibs unset, as serin leaves it; actions and
// discovery never get the open libraries).
func newState(obj map[string]any) (*lua.LState, context.CancelFunc, error) {
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, openNothing},
	} {
		if err := L.CallByParam(lua.P{Fn: L.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			L.Close()
			return nil, nil, fmt.Errorf("opening %s: %w", lib.name, err)
		}
	}
	L.PreloadModule(lua.OsLibName, safeOsLoader)
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	L.SetContext(ctx)
	L.SetGlobal("actionParams", L.CreateTable(0, 0))
	L.SetGlobal("obj", toLua(L, obj))
	return L, func() { cancel(); L.Close() }, nil
}

// toLua turns a decoded JSON value into Lua values, as Argo CD's decodeValue:
// arrays are filled by appending (so a null inside one is skipped), objects
// by raw sets, null is nil.
func toLua(L *lua.LState, v any) lua.LValue {
	switch t := v.(type) {
	case bool:
		return lua.LBool(t)
	case string:
		return lua.LString(t)
	case int64:
		return lua.LNumber(t)
	case float64:
		return lua.LNumber(t)
	case []any:
		arr := L.CreateTable(len(t), 0)
		for _, item := range t {
			arr.Append(toLua(L, item))
		}
		return arr
	case map[string]any:
		tbl := L.CreateTable(0, len(t))
		for k, item := range t {
			tbl.RawSetH(lua.LString(k), toLua(L, item))
		}
		return tbl
	}
	return lua.LNil
}

// runScript runs the script at path on obj; it returns the script's last
// return value encoded by gopher-json (nil for a nil result), and the Lua
// type of that value.
func runScript(path string, obj map[string]any) ([]byte, lua.LValueType, error) {
	source, err := os.ReadFile(path)
	if err != nil {
		return nil, lua.LTNil, err
	}
	return runSource(string(source), obj)
}

func runSource(source string, obj map[string]any) ([]byte, lua.LValueType, error) {
	L, done, err := newState(obj)
	if err != nil {
		return nil, lua.LTNil, err
	}
	defer done()
	fn, err := L.LoadString(source)
	if err == nil {
		L.Push(fn)
		err = L.PCall(0, lua.MultRet, nil)
	}
	if err != nil {
		// Argo CD drops the stack trace of a runtime error before showing it.
		var apiErr *lua.ApiError
		if errors.As(err, &apiErr) && apiErr.Type == lua.ApiErrorRun {
			apiErr.StackTrace = ""
		}
		return nil, lua.LTNil, err
	}
	result := L.Get(-1)
	if result.Type() != lua.LTTable {
		return nil, result.Type(), nil
	}
	encoded, err := luajson.Encode(result)
	if err != nil {
		return nil, lua.LTTable, err
	}
	return encoded, lua.LTTable, nil
}

func wrongType(t lua.LValueType) error {
	return fmt.Errorf("expect table output from Lua script, not %s", t)
}

// Health -------------------------------------------------------------------

type health struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

var healthCodes = map[string]bool{
	"Unknown": true, "Progressing": true, "Suspended": true, "Healthy": true, "Degraded": true, "Missing": true,
}

// healthOf is ExecuteHealthLua: a nil result, or a table that does not
// decode into {status, message}, is an empty health; an unknown status is
// Unknown, "Lua returned an invalid health status".
func healthOf(path string, obj map[string]any) (*health, error) {
	encoded, kind, err := runScript(path, obj)
	if err != nil {
		return nil, err
	}
	switch kind {
	case lua.LTNil:
		return &health{}, nil
	case lua.LTTable:
	default:
		return nil, wrongType(kind)
	}
	var hs health
	if err := json.Unmarshal(encoded, &hs); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return &health{}, nil
		}
		return nil, err
	}
	if !healthCodes[hs.Status] {
		return &health{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	return &hs, nil
}

// Discovery ----------------------------------------------------------------

type actionParam struct {
	Name    string `json:"name,omitempty"`
	Value   string `json:"value,omitempty"`
	Type    string `json:"type,omitempty"`
	Default string `json:"default,omitempty"`
}

type resourceAction struct {
	Name        string        `json:"name"`
	Params      []actionParam `json:"params,omitempty"`
	Disabled    bool          `json:"disabled"`
	IconClass   string        `json:"iconClass,omitempty"`
	DisplayName string        `json:"displayName,omitempty"`
}

// discoveryOf is ExecuteResourceActionDiscovery for one script: a table of
// actions by name; an action is enabled unless its disabled is true.
func discoveryOf(path string, obj map[string]any) ([]resourceAction, error) {
	encoded, kind, err := runScript(path, obj)
	if err != nil {
		return nil, err
	}
	if kind != lua.LTTable {
		return nil, wrongType(kind)
	}
	actions := []resourceAction{}
	if string(encoded) == "[]" {
		return actions, nil
	}
	var byName map[string]any
	if err := json.Unmarshal(encoded, &byName); err != nil {
		return nil, fmt.Errorf("error unmarshaling action table: %w", err)
	}
	for name, value := range byName {
		action := resourceAction{Name: name}
		fields, isObject := value.(map[string]any)
		if d, ok := fields["disabled"].(bool); ok {
			action.Disabled = d
		}
		if isObject {
			raw, err := json.Marshal(value)
			if err != nil {
				return nil, err
			}
			if err := json.Unmarshal(raw, &action); err != nil {
				return nil, fmt.Errorf("error unmarshaling resource action: %w", err)
			}
		} else if _, isArray := value.([]any); !isArray {
			return nil, fmt.Errorf("error unmarshaling resource action %s: not a table", name)
		}
		actions = append(actions, action)
	}
	sort.Slice(actions, func(i, j int) bool { return actions[i].Name < actions[j].Name })
	return actions, nil
}

// Actions ------------------------------------------------------------------

type impacted struct {
	Operation string         `json:"operation"`
	Resource  map[string]any `json:"resource"`
}

type actionResult struct {
	// list: the script returned a list of {operation, resource} (Argo CD
	// 2.8+); otherwise it returned the object itself, a patch.
	list      bool
	resources []impacted
}

func (r *actionResult) printable() any {
	if r.list {
		return r.resources
	}
	return r.resources[0].Resource
}

// actionOf is ExecuteResourceAction: the result is the object (a patch of
// it) or a list of {operation: "patch"|"create", resource}; a patched object
// then has each empty array that stands where the live object has an object
// put back as an empty object, since gopher-json encodes an empty table as [].
func actionOf(path string, live map[string]any) (*actionResult, error) {
	encoded, kind, err := runScript(path, live)
	if err != nil {
		return nil, err
	}
	if kind != lua.LTTable {
		return nil, wrongType(kind)
	}
	if len(encoded) < 2 {
		return nil, errors.New("Lua output was not a valid json object or array")
	}
	res := &actionResult{}
	if encoded[0] == '[' {
		res.list = true
		var items []struct {
			Operation string          `json:"operation"`
			Resource  json.RawMessage `json:"resource"`
		}
		if err := json.Unmarshal(encoded, &items); err != nil {
			return nil, err
		}
		for _, item := range items {
			if item.Operation != "patch" && item.Operation != "create" {
				return nil, fmt.Errorf("unsupported operation: %q", item.Operation)
			}
			obj, err := decodeObject(item.Resource)
			if err != nil {
				return nil, fmt.Errorf("resource of a %s: %w", item.Operation, err)
			}
			res.resources = append(res.resources, impacted{item.Operation, obj})
		}
	} else {
		obj, err := decodeObject(encoded)
		if err != nil {
			return nil, err
		}
		res.resources = []impacted{{"patch", obj}}
	}
	for _, r := range res.resources {
		if r.Operation == "patch" {
			restoreEmptyObjects(r.Resource, live)
		}
	}
	return res, nil
}

// restoreEmptyObjects is Argo CD's cleanReturnedObj.
func restoreEmptyObjects(result, live map[string]any) {
	for key, old := range live {
		value, ok := result[key]
		if !ok {
			continue
		}
		switch v := value.(type) {
		case map[string]any:
			if o, ok := old.(map[string]any); ok {
				restoreEmptyObjects(v, o)
			}
		case []any:
			switch o := old.(type) {
			case map[string]any:
				if len(v) == 0 {
					result[key] = map[string]any{}
				}
			case []any:
				restoreInArray(v, o)
			}
		}
	}
}

func restoreInArray(result, live []any) {
	for i := range result {
		if i >= len(live) {
			break
		}
		switch v := result[i].(type) {
		case map[string]any:
			if o, ok := live[i].(map[string]any); ok {
				restoreEmptyObjects(v, o)
			}
		case []any:
			if o, ok := live[i].([]any); ok {
				restoreInArray(v, o)
			}
		}
	}
}

// request is one call Argo CD's API server makes for an action's result.
type request struct {
	Verb        string         `json:"verb"`
	Subresource string         `json:"subresource,omitempty"`
	Patch       map[string]any `json:"patch,omitempty"`
	Object      map[string]any `json:"object,omitempty"`
}

// requestsFor is what RunResourceActionV2 and patchResource send, for a CRD
// with a status subresource: for a patch, the JSON merge patch from the live
// object to the result (none when empty); if it touches .status, the whole
// patch to /status (where the API server keeps only .status), then the rest
// to the object. A create sends the resource as it is.
func requestsFor(live map[string]any, res *actionResult) ([]request, error) {
	liveJSON, err := json.Marshal(live)
	if err != nil {
		return nil, err
	}
	out := []request{}
	for _, r := range res.resources {
		if r.Operation == "create" {
			out = append(out, request{Verb: "create", Object: r.Resource})
			continue
		}
		newJSON, err := json.Marshal(r.Resource)
		if err != nil {
			return nil, err
		}
		diff, err := jsonpatch.CreateMergePatch(liveJSON, newJSON)
		if err != nil {
			return nil, fmt.Errorf("error calculating merge patch: %w", err)
		}
		patch, err := decodeObject(diff)
		if err != nil {
			return nil, err
		}
		if len(patch) == 0 {
			continue
		}
		if _, ok := patch["status"]; ok {
			out = append(out, request{Verb: "patch", Subresource: "status", Patch: patch})
			rest := map[string]any{}
			for k, v := range patch {
				if k != "status" {
					rest[k] = v
				}
			}
			patch = rest
		}
		if len(patch) > 0 {
			out = append(out, request{Verb: "patch", Patch: patch})
		}
	}
	return out, nil
}

// describe prints requests compactly, to compare them in the tests.
func describe(reqs []request) string {
	if len(reqs) == 0 {
		return "none"
	}
	parts := make([]string, 0, len(reqs))
	for _, r := range reqs {
		body, _ := json.Marshal(r.Patch)
		if r.Verb == "create" {
			body, _ = json.Marshal(r.Object)
		}
		name := r.Verb
		if r.Subresource != "" {
			name += " " + r.Subresource
		}
		parts = append(parts, name+" "+string(body))
	}
	return strings.Join(parts, " + ")
}
