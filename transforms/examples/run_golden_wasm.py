#!/usr/bin/env python3
"""Run the golden cases against the built WebAssembly components (not the native code).

Loads target/plugins/<plugin>.wasm (build.sh makes them) with Wasmtime's Python binding,
links WASI p2 with an empty context (no files, environment or network) and
civicbus:transform/host.log, then for each tests/golden/<plugin>/input-<case>.json calls
`init(config)` and `transform(event)` on a fresh instance and compares the result with
expected-<case>.json or error-<case>.json, as the native tests do.

This checks the components themselves (the export layer, the canonical ABI, the wasm32
maths) without the civicbus host. Needs `python3 -m pip install wasmtime` (a registry
package that ships its own libwasmtime). Usage:
    python3 run_golden_wasm.py [PLUGIN ...]
"""

import base64
import glob
import json
import os
import sys

from wasmtime import Engine, Store, WasiConfig
from wasmtime.component import Component, Linker, Record

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "tests", "golden")
PLUGINS = os.path.join(HERE, "target", "plugins")
CORE = ("specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema")


def is_json(ct):
    if ct is None:
        return True
    e = ct.split(";")[0].strip().lower()
    return e in ("application/json", "text/json") or e.endswith("+json")


def is_text(ct):
    e = (ct or "").split(";")[0].strip().lower()
    return e.startswith("text/") or e == "application/xml" or e.endswith("+xml")


def to_wit(ev):
    r = Record()
    for name in CORE[1:]:
        setattr(r, name, ev.get(name))
    exts = []
    for name in sorted(ev):
        if name in CORE or name in ("data", "data_base64") or ev[name] is None:
            continue
        x = Record()
        x.name = name
        x.value = ev[name]  # bool, int or str: the variant is untagged in the binding
        exts.append(x)
    r.extensions = exts
    if "data_base64" in ev:
        r.data = base64.b64decode(ev["data_base64"])
    elif "data" in ev:
        d = ev["data"]
        if isinstance(d, str) and not is_json(ev.get("datacontenttype")):
            r.data = d.encode()
        else:
            r.data = json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    else:
        r.data = None
    return r


def from_wit(r):
    ev = {"specversion": "1.0"}
    for name in CORE[1:]:
        v = getattr(r, name)
        if v is not None:
            ev[name] = v
    for x in r.extensions:
        ev[x.name] = x.value
    if r.data is not None:
        ct = ev.get("datacontenttype")
        try:
            if not is_json(ct):
                raise ValueError
            ev["data"] = json.loads(r.data)
        except ValueError:
            if is_text(ct):
                ev["data"] = r.data.decode()
            else:
                ev["data_base64"] = base64.b64encode(r.data).decode()
    return ev


def json_eq(a, b):
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b or abs(a - b) <= 1e-12 * max(abs(a), abs(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_eq(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_eq(a[k], b[k]) for k in a)
    return a == b


class Plugin:
    def __init__(self, engine, path):
        self.engine = engine
        self.component = Component.from_file(engine, path)
        self.logs = []
        self.linker = Linker(engine)
        self.linker.add_wasip2()
        with self.linker.root() as root:
            with root.add_instance("civicbus:transform/host@0.1.0") as host:
                host.add_func("log", lambda _store, level, message: self.logs.append((level, message)))

    def run(self, config, event):
        store = Store(self.engine)
        store.set_wasi(WasiConfig())  # nothing: no preopened dirs, args, env or network
        inst = self.linker.instantiate(store, self.component)
        iface = inst.get_export_index(store, "civicbus:transform/transformer@0.1.0")
        init = inst.get_func(store, inst.get_export_index(store, "init", iface))
        transform = inst.get_func(store, inst.get_export_index(store, "transform", iface))
        refused = init(store, config)
        init.post_return(store)
        if refused is not None:
            return ("refused", refused)
        result = transform(store, to_wit(event))
        transform.post_return(store)
        if isinstance(result, list):
            return ("events", [from_wit(r) for r in result])
        return ("error", {"kind": result.kind, "message": result.message})


def main(names):
    engine = Engine()
    plugins = names or sorted(os.path.basename(p) for p in glob.glob(os.path.join(GOLDEN, "*")))
    passed = failed = 0
    for name in plugins:
        wasm = os.path.join(PLUGINS, f"{name}.wasm")
        if not os.path.exists(wasm):
            print(f"FAIL {name}: {wasm} is missing; run build.sh first")
            failed += 1
            continue
        plugin = Plugin(engine, wasm)
        d = os.path.join(GOLDEN, name)
        default_config = open(os.path.join(d, "config.json")).read() if os.path.exists(os.path.join(d, "config.json")) else "{}"
        for inp in sorted(glob.glob(os.path.join(d, "input-*.json"))):
            case = os.path.basename(inp)[len("input-"):-len(".json")]
            cfg_path = os.path.join(d, f"config-{case}.json")
            config = open(cfg_path).read() if os.path.exists(cfg_path) else default_config
            kind, got = plugin.run(config, json.load(open(inp)))
            exp_path, err_path = os.path.join(d, f"expected-{case}.json"), os.path.join(d, f"error-{case}.json")
            if os.path.exists(exp_path):
                want = ("events", json.load(open(exp_path)))
            elif os.path.exists(err_path):
                want = ("error", json.load(open(err_path)))
            else:
                want = ("missing", None)
            if want[0] == kind and json_eq(want[1], got):
                passed += 1
            else:
                failed += 1
                print(f"FAIL {name}/{case}: expected {want[0]} {json.dumps(want[1])[:400]}\n     got {kind} {json.dumps(got)[:400]}")
        print(f"{name}: {len(plugin.logs)} log lines, e.g. {plugin.logs[:1]}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
