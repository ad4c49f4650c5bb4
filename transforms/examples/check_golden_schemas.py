#!/usr/bin/env python3
"""Check the golden files of the example plugins against the civicbus event catalogue.

Every output event in tests/golden/<plugin>/expected-*.json must have data that validates
against the catalogue schema of its type (found by `dataschema`, else by `type` at the
highest major version), and the input of every case that succeeds must validate too when
its type is in the catalogue. Inputs of error cases may be invalid on purpose.

Needs `python3 -m pip install jsonschema referencing`. Usage:
    python3 check_golden_schemas.py [SCHEMAS_DIR] [GOLDEN_DIR]
"""

import glob
import json
import os
import re
import sys

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMAS = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "schemas")
GOLDEN = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "tests", "golden")


def load_catalogue(root):
    root = os.path.realpath(root)
    resources, by_type = [], {}
    for path in glob.glob(os.path.join(root, "**", "*.json"), recursive=True):
        if "examples" in os.path.relpath(path, root).split(os.sep):
            continue
        with open(path) as f:
            schema = json.load(f)
        if "$id" not in schema:
            continue
        resources.append((schema["$id"], Resource.from_contents(schema)))
        m = re.match(r"(.+)\.v(\d+)\.json$", os.path.basename(path))
        if m and not path.startswith(os.path.join(root, "common")):
            ty, major = m.group(1), int(m.group(2))
            if ty not in by_type or by_type[ty][0] < major:
                by_type[ty] = (major, schema)
    registry = Registry().with_resources(resources)
    return registry, {k: v[1] for k, v in by_type.items()}


def schema_for(event, registry, by_type):
    uri = event.get("dataschema")
    if uri:
        try:
            return registry.contents(uri), uri
        except Exception:  # noqa: BLE001 - an unknown $id is reported below
            return None, f"unknown dataschema {uri}"
    schema = by_type.get(event.get("type"))
    return (schema, schema["$id"]) if schema else (None, f"no catalogue schema for {event.get('type')}")


def errors(schema, data, registry):
    v = Draft202012Validator(schema, registry=registry)
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in v.iter_errors(data)]


def main():
    registry, by_type = load_catalogue(SCHEMAS)
    failures, outputs, inputs = [], 0, 0
    for plugin_dir in sorted(glob.glob(os.path.join(GOLDEN, "*"))):
        plugin = os.path.basename(plugin_dir)
        for inp in sorted(glob.glob(os.path.join(plugin_dir, "input-*.json"))):
            case = os.path.basename(inp)[len("input-"):-len(".json")]
            expected = os.path.join(plugin_dir, f"expected-{case}.json")
            with open(inp) as f:
                event = json.load(f)
            schema, what = schema_for(event, registry, by_type)
            if os.path.exists(expected) and schema is not None:
                inputs += 1
                for e in errors(schema, event.get("data"), registry):
                    failures.append(f"{plugin}/{case} input ({what}): {e}")
            if not os.path.exists(expected):
                continue
            with open(expected) as f:
                outs = json.load(f)
            for i, out in enumerate(outs):
                outputs += 1
                where = f"{plugin}/{case} output {i} ({out.get('type')})"
                for attr in ("specversion", "id", "source", "type"):
                    if not out.get(attr):
                        failures.append(f"{where}: no {attr}")
                schema, what = schema_for(out, registry, by_type)
                if schema is None:
                    failures.append(f"{where}: {what}")
                    continue
                for e in errors(schema, out.get("data"), registry):
                    failures.append(f"{where} against {what}: {e}")
    for f in failures:
        print("FAIL", f)
    print(f"{outputs} output events and {inputs} inputs checked against the catalogue; {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
