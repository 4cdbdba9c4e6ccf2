package main

// `argocd-lua test ARGOCD_DIR`: serin's Argo CD tests. ARGOCD_DIR/test/fixtures.lua
// holds Releases in each state serin writes, with the health and enabled
// actions each must give. Each fixture is turned into JSON, then read back as
// Argo CD reads an object from the API server, and every script runs on it in
// the VM Argo CD sets up (newState); each action's result becomes the requests
// Argo CD's API server would send.

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// The actions, as named in Argo CD and in actions/<name>/action.lua, and the
// status.control field each control action sets.
var (
	actionNames = []string{"abort", "pause", "promote", "promote-full", "resume", "retry"}
	controlOf   = map[string]string{"promote": "promote", "promote-full": "promoteFull", "abort": "abort", "retry": "retry"}
)

type checker struct {
	out            io.Writer
	passed, failed int
}

func (c *checker) check(name string, ok bool, detail string) {
	if ok {
		c.passed++
		fmt.Fprintf(c.out, "ok   %s\n", name)
	} else {
		c.failed++
		fmt.Fprintf(c.out, "FAIL %s: %s\n", name, detail)
	}
}

type fixture struct {
	Name    string         `json:"name"`
	Obj     map[string]any `json:"obj"`
	Health  []string       `json:"health"`
	Enabled []string       `json:"enabled"`
}

func runFixtures(dir string, out io.Writer) (int, error) {
	c := &checker{out: out}
	checkSandbox(c)

	// The ConfigMap installs exactly the actions there are, and those are the
	// ones discovery knows about.
	cm, err := os.ReadFile(filepath.Join(dir, "argocd-cm.yaml"))
	if err != nil {
		return 0, err
	}
	var installed []string
	for _, m := range regexp.MustCompile(`\n    - name: ([\w-]+)`).FindAllStringSubmatch(string(cm), -1) {
		installed = append(installed, m[1])
	}
	dirs, err := filepath.Glob(filepath.Join(dir, "actions", "*", "action.lua"))
	if err != nil {
		return 0, err
	}
	var present []string
	for _, d := range dirs {
		present = append(present, filepath.Base(filepath.Dir(d)))
	}
	want := joinSorted(actionNames)
	c.check("argocd-cm.yaml defines "+want, joinSorted(installed) == want, "it defines "+joinSorted(installed))
	c.check("actions/ holds "+want, joinSorted(present) == want, "it holds "+joinSorted(present))

	fixtures, err := loadFixtures(filepath.Join(dir, "test", "fixtures.lua"))
	if err != nil {
		return 0, err
	}
	captured, err := loadCaptured(filepath.Join(dir, "test", "captured"))
	if err != nil {
		return 0, err
	}
	for _, f := range append(fixtures, captured...) {
		checkFixture(c, dir, f)
	}
	fmt.Fprintf(out, "argocd (gopher-lua, as Argo CD runs it): %d passed, %d failed\n", c.passed, c.failed)
	return c.failed, nil
}

// printFixtures prints {name, object} for each fixture, one a line, to
// compare with `kubectl get release -o json`.
func printFixtures(dir string, out io.Writer) error {
	fixtures, err := loadFixtures(filepath.Join(dir, "test", "fixtures.lua"))
	if err != nil {
		return err
	}
	for _, f := range fixtures {
		if err := printJSON(out, map[string]any{"name": f.Name, "object": f.Obj}); err != nil {
			return err
		}
	}
	return nil
}

// fromJSON reads an object as it would come from the API server.
func fromJSON(v any) (map[string]any, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return decodeObject(data)
}

func checkFixture(c *checker, dir string, f fixture) {
	live, err := fromJSON(f.Obj)
	if err != nil {
		c.check(f.Name, false, err.Error())
		return
	}
	fresh := func() map[string]any {
		obj, _ := fromJSON(live)
		return obj
	}

	// Health.
	want := fmt.Sprintf("%s %q", f.Health[0], f.Health[1])
	got, problem := "", ""
	if hs, err := healthOf(filepath.Join(dir, "health.lua"), fresh()); err != nil {
		problem = err.Error()
	} else {
		got = fmt.Sprintf("%s %q", hs.Status, hs.Message)
	}
	c.check("health    "+f.Name+": "+want, problem == "" && got == want, problem+" got "+got)

	// Discovery: all six listed, with names and icons; the expected ones enabled.
	expected := joinSorted(f.Enabled)
	got, problem = "", ""
	if actions, err := discoveryOf(filepath.Join(dir, "actions", "discovery.lua"), fresh()); err != nil {
		problem = err.Error()
	} else {
		var names, enabled []string
		for _, a := range actions {
			names = append(names, a.Name)
			if a.DisplayName == "" || a.IconClass == "" {
				problem = a.Name + " lacks displayName or iconClass"
			}
			if !a.Disabled {
				enabled = append(enabled, a.Name)
			}
		}
		if joinSorted(names) != joinSorted(actionNames) {
			problem = "lists " + joinSorted(names)
		}
		got = joinSorted(enabled)
	}
	c.check("discovery "+f.Name+": "+expected, problem == "" && got == expected, problem+" got "+got)

	// Each action asks for exactly what it should, through the right endpoint.
	status, _ := live["status"].(map[string]any)
	control, _ := status["control"].(map[string]any)
	spec, _ := live["spec"].(map[string]any)
	for _, name := range actionNames {
		var wantReqs []request
		if field, ok := controlOf[name]; ok {
			if control[field] != true {
				wantReqs = []request{{Verb: "patch", Subresource: "status", Patch: map[string]any{
					"status": map[string]any{"control": map[string]any{field: true}},
				}}}
			}
		} else if paused := name == "pause"; (spec["paused"] == true) != paused {
			wantReqs = []request{{Verb: "patch", Patch: map[string]any{"spec": map[string]any{"paused": paused}}}}
		}
		want := describe(wantReqs)
		got, problem := "", ""
		res, err := actionOf(actionPath(filepath.Join(dir, "actions"), name), fresh())
		if err == nil && res.list {
			err = fmt.Errorf("returned a list, not the object")
		}
		if err == nil {
			obj := res.resources[0].Resource
			meta, _ := obj["metadata"].(map[string]any)
			liveMeta, _ := live["metadata"].(map[string]any)
			if obj["apiVersion"] != live["apiVersion"] || obj["kind"] != live["kind"] || meta == nil || meta["name"] != liveMeta["name"] {
				err = fmt.Errorf("returned another object")
			}
		}
		if err == nil {
			var reqs []request
			if reqs, err = requestsFor(live, res); err == nil {
				got = describe(reqs)
			}
		}
		if err != nil {
			problem = err.Error()
		}
		c.check("action    "+f.Name+": "+name+" -> "+want, problem == "" && got == want, problem+" got "+got)
	}
}

// checkSandbox: scripts relying on more than Argo CD offers must fail here.
func checkSandbox(c *checker) {
	obj := map[string]any{
		"kind": "x", "list": []any{int64(1), int64(2)}, "empty": map[string]any{}, "none": []any{},
		"gone": nil, "n": int64(3),
	}
	fails := func(name, source string) {
		_, _, err := runSource(source, obj)
		c.check("sandbox: "+name, err != nil, "it ran")
	}
	gives := func(name, source, want string) {
		encoded, _, err := runSource(source, obj)
		got := string(encoded)
		if err != nil {
			got = err.Error()
		}
		c.check("sandbox: "+name+" gives "+want, err == nil && got == want, "got "+got)
	}
	fails("no string library", `return { s = string.format("%d", 1) }`)
	fails("no string methods", `return { s = ("x"):upper() }`)
	fails("no math library", `return { n = math.floor(1.5) }`)
	fails("no io library", `return { f = io.open("/etc/hostname") }`)
	fails("no global os", `return { t = os.time() }`)
	fails("no os.getenv behind require", `local os = require("os"); return { h = os.getenv("HOME") }`)
	fails("no debug library", `return { s = debug.traceback() }`)
	gives("table library, # and ..", `return { n = table.getn(obj.list), m = #obj.list, kind = obj.kind .. "!" }`, `{"kind":"x!","m":2,"n":2}`)
	gives("os.time and os.date behind require", `local os = require("os"); return { t = os.time() > 0, d = os.date("!%Y") ~= "" }`, `{"d":true,"t":true}`)
	gives("a JSON null leaves the key out", `return { gone = obj.gone == nil, n = obj.n + 0.5 }`, `{"gone":true,"n":3.5}`)
	gives("an empty object and an empty array both read as an empty table", `return { e = next(obj.empty) == nil, a = #obj.none }`, `{"a":0,"e":true}`)
	gives("an empty table encodes as []", `return { e = {} }`, `{"e":[]}`)
	_, _, err := runSource(`while true do end`, obj)
	c.check("sandbox: a runaway script stops after a second", err != nil && strings.Contains(err.Error(), "context deadline exceeded"), fmt.Sprint(err))
}

// loadFixtures evaluates the fixtures file (test data, so with every
// library) and turns its tables into JSON values: keys 1..n make an array,
// any other table (the empty one too) an object.
func loadFixtures(path string) ([]fixture, error) {
	L := lua.NewState()
	defer L.Close()
	if err := L.DoFile(path); err != nil {
		return nil, err
	}
	value, err := fromLuaData(L.Get(-1), path)
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(value)
	if err != nil {
		return nil, err
	}
	var fixtures []fixture
	if err := json.Unmarshal(data, &fixtures); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(fixtures) == 0 {
		return nil, fmt.Errorf("%s: no fixtures", path)
	}
	return fixtures, nil
}

// loadCaptured reads the Releases the e2e suite captured from the API server
// (SERIN_ARGOCD_CAPTURE, e2e/tests/argocd.rs), one fixture a file:
// {"name", "health": [status, message], "enabled": [...], "obj"}.
func loadCaptured(dir string) ([]fixture, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	var out []fixture
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		raw, err := decodeObject(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		var f fixture
		if err := json.Unmarshal(data, &f); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		obj, ok := raw["obj"].(map[string]any)
		if !ok || len(f.Health) != 2 || f.Name == "" {
			return nil, fmt.Errorf("%s: needs name, health [status, message] and obj", file)
		}
		f.Name = "captured " + f.Name
		f.Obj = obj
		out = append(out, f)
	}
	return out, nil
}

func fromLuaData(v lua.LValue, where string) (any, error) {
	switch t := v.(type) {
	case lua.LBool:
		return bool(t), nil
	case lua.LString:
		return string(t), nil
	case lua.LNumber:
		f := float64(t)
		if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return int64(f), nil
		}
		return f, nil
	case *lua.LTable:
		n := t.Len()
		count := 0
		t.ForEach(func(lua.LValue, lua.LValue) { count++ })
		if n > 0 && n == count {
			arr := make([]any, n)
			for i := 1; i <= n; i++ {
				item, err := fromLuaData(t.RawGetInt(i), fmt.Sprintf("%s[%d]", where, i))
				if err != nil {
					return nil, err
				}
				arr[i-1] = item
			}
			return arr, nil
		}
		obj := map[string]any{}
		var err error
		t.ForEach(func(k, item lua.LValue) {
			if err != nil {
				return
			}
			key, ok := k.(lua.LString)
			if !ok {
				err = fmt.Errorf("%s: key %v is not a string", where, k)
				return
			}
			obj[string(key)], err = fromLuaData(item, where+"."+string(key))
		})
		return obj, err
	}
	return nil, fmt.Errorf("%s: a %s is not data", where, v.Type())
}

func joinSorted(list []string) string {
	out := append([]string(nil), list...)
	sort.Strings(out)
	return strings.Join(out, ",")
}
