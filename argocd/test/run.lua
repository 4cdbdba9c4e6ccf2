-- Tests of serin's Argo CD customizations (health check, action discovery,
-- actions), in plain Lua 5.1 with no libraries: Argo CD runs these scripts in
-- gopher-lua, a Lua 5.1.
--
--   lua5.1 argocd/test/run.lua          run every check, one line each
--   lua5.1 argocd/test/run.lua --dump   print each fixture as JSON, one a line
--
-- Each script runs as Argo CD runs it (util/lua/lua.go, runLua): its body
-- sees a global `obj` holding the Release, only the base and table libraries
-- (and a few os functions) are there, and the value it returns is the result.
-- An action's result is then judged as Argo CD's server does (server/application,
-- patchResource): the JSON merge patch from the live object to the result,
-- sent to the status subresource when it touches .status.

local dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local root = dir .. "/.."

-- The actions, as named in Argo CD and in actions/<name>/action.lua.
local ACTIONS = { "abort", "pause", "promote", "promote-full", "resume", "retry" }
-- The status.control field each control action sets.
local CONTROL = { promote = "promote", ["promote-full"] = "promoteFull", abort = "abort", retry = "retry" }
local HEALTH_CODES = { Healthy = true, Progressing = true, Suspended = true, Degraded = true, Missing = true, Unknown = true }

local function read(path)
  local f, err = io.open(path, "rb")
  if not f then
    error(err, 0)
  end
  local text = f:read("*a")
  f:close()
  return text
end

-- Values ------------------------------------------------------------------

local NULL = setmetatable({}, { __tostring = function() return "null" end })

local function copy(v)
  if type(v) ~= "table" or v == NULL then
    return v
  end
  local t = {}
  for k, x in pairs(v) do
    t[k] = copy(x)
  end
  return t
end

local function equal(a, b)
  if type(a) ~= type(b) then
    return false
  end
  if type(a) ~= "table" then
    return a == b
  end
  for k, v in pairs(a) do
    if not equal(v, b[k]) then
      return false
    end
  end
  for k in pairs(b) do
    if a[k] == nil then
      return false
    end
  end
  return true
end

-- A JSON array: keys exactly 1..n, n > 0. An empty table is taken as an object.
local function is_array(t)
  local n = 0
  for k in pairs(t) do
    if type(k) ~= "number" or k < 1 or k % 1 ~= 0 then
      return false
    end
    n = n + 1
  end
  for i = 1, n do
    if t[i] == nil then
      return false
    end
  end
  return n > 0
end

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

-- Compact JSON with sorted keys, to print and compare patches and fixtures.
local function encode(v)
  if v == NULL or v == nil then
    return "null"
  end
  local kind = type(v)
  if kind == "boolean" then
    return tostring(v)
  elseif kind == "number" then
    if v % 1 == 0 and v > -2 ^ 53 and v < 2 ^ 53 then
      return string.format("%.0f", v)
    end
    return string.format("%.17g", v)
  elseif kind == "string" then
    return '"' .. v:gsub('[%c"\\]', function(c)
      return ESCAPES[c] or string.format("\\u%04x", c:byte())
    end) .. '"'
  elseif kind == "table" then
    local parts = {}
    if is_array(v) then
      for i = 1, #v do
        parts[i] = encode(v[i])
      end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    local keys = {}
    for k in pairs(v) do
      keys[#keys + 1] = tostring(k)
    end
    table.sort(keys)
    for i, k in ipairs(keys) do
      parts[i] = encode(k) .. ":" .. encode(v[k])
    end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  error("cannot encode a " .. kind)
end

-- Whether Argo CD can turn v into JSON (gopher-json): tables are arrays
-- (keys 1..n) or objects (string keys), values plain data. nil when it can.
local function unencodable(v, path)
  local kind = type(v)
  if kind == "string" or kind == "boolean" then
    return nil
  elseif kind == "number" then
    if v ~= v or v == math.huge or v == -math.huge then
      return path .. " is not a finite number"
    end
    return nil
  elseif kind ~= "table" then
    return path .. " is a " .. kind
  end
  local array = is_array(v)
  for k, x in pairs(v) do
    if not array and type(k) ~= "string" then
      return path .. " mixes array and object keys"
    end
    local problem = unencodable(x, path .. "." .. tostring(k))
    if problem then
      return problem
    end
  end
  return nil
end

-- The JSON merge patch (RFC 7386) from `from` to `to`, as Argo CD computes
-- it (jsonpatch.CreateMergePatch): objects recursively, arrays whole.
local function merge_patch(from, to)
  local patch = {}
  for k, new in pairs(to) do
    local old = from[k]
    if old == nil then
      patch[k] = new
    elseif type(old) == "table" and type(new) == "table" and not is_array(old) and not is_array(new) then
      local sub = merge_patch(old, new)
      if next(sub) ~= nil then
        patch[k] = sub
      end
    elseif not equal(old, new) then
      patch[k] = new
    end
  end
  for k in pairs(from) do
    if to[k] == nil then
      patch[k] = NULL
    end
  end
  return patch
end

-- The requests Argo CD sends for a patch: "none", "status <patch>" (the
-- status subresource), "main <patch>", or both.
local function requests(patch)
  if next(patch) == nil then
    return "none"
  end
  local rest = {}
  for k, v in pairs(patch) do
    if k ~= "status" then
      rest[k] = v
    end
  end
  local sent = {}
  if patch.status ~= nil then
    sent[#sent + 1] = "status " .. encode(patch)
  end
  if next(rest) ~= nil then
    sent[#sent + 1] = "main " .. encode(rest)
  end
  return table.concat(sent, " + ")
end

-- Argo CD's Lua sandbox -----------------------------------------------------

local BASE = {
  "assert", "error", "getmetatable", "ipairs", "next", "pairs", "pcall", "print", "rawequal",
  "rawget", "rawset", "select", "setmetatable", "tonumber", "tostring", "type", "unpack", "xpcall",
}

local function sandbox(o)
  local env = { obj = o }
  for _, name in ipairs(BASE) do
    env[name] = _G[name]
  end
  env.table = {
    concat = table.concat, getn = table.getn, insert = table.insert,
    maxn = table.maxn, remove = table.remove, sort = table.sort,
  }
  env.os = { clock = os.clock, date = os.date, difftime = os.difftime, time = os.time }
  env._G = env
  return env
end

-- Runs a script body on `o`; returns its result, or nil and the error.
local function run_source(source, name, o)
  local chunk, err = loadstring(source, "@" .. name)
  if not chunk then
    return nil, err
  end
  setfenv(chunk, sandbox(o))
  -- No string library in Argo CD: strings have no methods either.
  local strings = getmetatable("")
  local methods = strings.__index
  strings.__index = nil
  -- Argo CD stops a script after a second; stop a runaway loop here too.
  debug.sethook(function() error("script ran too long", 2) end, "", 10000000)
  local ok, result = pcall(chunk)
  debug.sethook()
  strings.__index = methods
  if not ok then
    return nil, tostring(result)
  end
  return result
end

local function run_file(relative, o)
  local path = root .. "/" .. relative
  return run_source(read(path), relative, o)
end

-- Checks ------------------------------------------------------------------

local passed, failed = 0, 0

local function check(name, ok, detail)
  if ok then
    passed = passed + 1
    print("ok   " .. name)
  else
    failed = failed + 1
    print("FAIL " .. name .. ": " .. tostring(detail))
  end
end

local function sorted(list)
  local out = {}
  for i, v in ipairs(list) do
    out[i] = v
  end
  table.sort(out)
  return out
end

local fixtures = dofile(dir .. "/fixtures.lua")

if arg and arg[1] == "--dump" then
  for _, f in ipairs(fixtures) do
    print(encode({ name = f.name, object = f.obj }))
  end
  os.exit(0)
end

-- The sandbox itself: scripts that rely on more than Argo CD offers must fail here.
do
  local _, err = run_source('return { s = string.format("%d", 1) }', "uses string", {})
  check("sandbox: no string library", err ~= nil, "string.format ran")
  _, err = run_source('return { s = ("x"):upper() }', "uses a method", {})
  check("sandbox: no string methods", err ~= nil, "a string method ran")
  _, err = run_source("return { n = math.floor(1.5) }", "uses math", {})
  check("sandbox: no math library", err ~= nil, "math.floor ran")
  local result
  result, err = run_source("return { n = table.getn(obj.list), kind = obj.kind .. '!' }", "uses table", { list = { 1, 2 }, kind = "x" })
  check("sandbox: table library and concatenation", result and result.n == 2 and result.kind == "x!", err)
end

-- The ConfigMap installs exactly the actions discovery knows about.
do
  local installed = {}
  for name in read(root .. "/argocd-cm.yaml"):gmatch("\n    %- name: ([%w-]+)") do
    installed[#installed + 1] = name
  end
  local want = table.concat(sorted(ACTIONS), ",")
  local got = table.concat(sorted(installed), ",")
  check("argocd-cm.yaml defines " .. want, got == want, "it defines " .. got)
end

for _, f in ipairs(fixtures) do
  local label = f.name

  -- Health.
  local want = f.health[1] .. " " .. encode(f.health[2])
  local hs, err = run_file("health.lua", copy(f.obj))
  local got, problem = nil, err
  if hs ~= nil then
    problem = unencodable(hs, "health")
    for k in pairs(hs) do
      if k ~= "status" and k ~= "message" then
        problem = "unexpected key " .. tostring(k)
      end
    end
    if not HEALTH_CODES[hs.status] then
      problem = "invalid status " .. tostring(hs.status)
    end
    got = tostring(hs.status) .. " " .. encode(hs.message)
  end
  check("health    " .. label .. ": " .. want, problem == nil and got == want, problem or ("got " .. tostring(got)))

  -- Discovery.
  local expected = table.concat(sorted(f.enabled), ",")
  local actions
  actions, err = run_file("actions/discovery.lua", copy(f.obj))
  problem, got = err, nil
  if actions ~= nil then
    problem = unencodable(actions, "actions")
    local names, enabled = {}, {}
    for name, a in pairs(actions) do
      names[#names + 1] = name
      if type(a) ~= "table" or type(a.disabled) ~= "boolean" then
        problem = name .. " has no boolean disabled"
      elseif type(a.displayName) ~= "string" or type(a.iconClass) ~= "string" then
        problem = name .. " lacks displayName or iconClass"
      elseif not a.disabled then
        enabled[#enabled + 1] = name
      end
    end
    if table.concat(sorted(names), ",") ~= table.concat(sorted(ACTIONS), ",") then
      problem = "lists " .. table.concat(sorted(names), ",")
    end
    got = table.concat(sorted(enabled), ",")
  end
  check("discovery " .. label .. ": " .. expected, problem == nil and got == expected, problem or ("got " .. tostring(got)))

  -- Each action changes exactly what it should, through the right endpoint.
  for _, name in ipairs(ACTIONS) do
    local live = f.obj
    local want_patch
    if CONTROL[name] then
      local field = CONTROL[name]
      if live.status and live.status.control and live.status.control[field] == true then
        want_patch = {}
      else
        want_patch = { status = { control = { [field] = true } } }
      end
    else
      local paused = name == "pause"
      want_patch = {}
      if (live.spec.paused == true) ~= paused then
        want_patch = { spec = { paused = paused } }
      end
    end
    want = requests(want_patch)

    local result
    result, err = run_file("actions/" .. name .. "/action.lua", copy(live))
    problem, got = err, nil
    if result ~= nil then
      problem = unencodable(result, "result")
      if type(result) ~= "table" or is_array(result) then
        problem = "did not return the object"
      elseif result.apiVersion ~= live.apiVersion or result.kind ~= live.kind
        or type(result.metadata) ~= "table" or result.metadata.name ~= live.metadata.name then
        problem = "returned another object"
      end
      if problem == nil then
        got = requests(merge_patch(live, result))
      end
    end
    check("action    " .. label .. ": " .. name .. " -> " .. want, problem == nil and got == want, problem or ("got " .. tostring(got)))
  end
end

print(string.format("argocd: %d passed, %d failed", passed, failed))
os.exit(failed == 0 and 0 or 1)
