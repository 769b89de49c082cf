"""JSON Schema (draft 7) of speedscope's file format, written from its specification
(src/lib/file-format-spec.ts: File, Frame, SampledProfile, EventedProfile, ValueUnit) for the
parts a file must satisfy to load: used with the `jsonschema` package."""

UNITS = ["none", "nanoseconds", "microseconds", "milliseconds", "seconds", "bytes"]

SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["$schema", "shared", "profiles"],
    "properties": {
        "$schema": {"const": "https://www.speedscope.app/file-format-schema.json"},
        "version": {"type": "string"},
        "name": {"type": "string"},
        "exporter": {"type": "string"},
        "activeProfileIndex": {"type": "number", "minimum": 0},
        "shared": {
            "type": "object",
            "required": ["frames"],
            "properties": {"frames": {"type": "array", "items": {"$ref": "#/definitions/Frame"}}},
        },
        "profiles": {
            "type": "array",
            "minItems": 1,
            "items": {"oneOf": [{"$ref": "#/definitions/SampledProfile"},
                                {"$ref": "#/definitions/EventedProfile"}]},
        },
    },
    "definitions": {
        "Frame": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string"}, "file": {"type": "string"},
                           "line": {"type": "number"}, "col": {"type": "number"}},
        },
        "SampledProfile": {
            "type": "object",
            "required": ["type", "name", "unit", "startValue", "endValue", "samples",
                         "weights"],
            "properties": {
                "type": {"const": "sampled"},
                "name": {"type": "string"},
                "unit": {"enum": UNITS},
                "startValue": {"type": "number"},
                "endValue": {"type": "number"},
                "samples": {"type": "array",
                            "items": {"type": "array",
                                      "items": {"type": "integer", "minimum": 0}}},
                "weights": {"type": "array", "items": {"type": "number", "minimum": 0}},
            },
        },
        "EventedProfile": {
            "type": "object",
            "required": ["type", "name", "unit", "startValue", "endValue", "events"],
            "properties": {"type": {"const": "evented"}},
        },
    },
}


def check_references(doc):
    """What a schema cannot say: indices within the frame table, as many weights as samples,
    endValue >= startValue."""
    n = len(doc["shared"]["frames"])
    for p in doc["profiles"]:
        assert p["endValue"] >= p["startValue"]
        if p["type"] == "sampled":
            assert len(p["samples"]) == len(p["weights"])
            assert all(0 <= i < n for s in p["samples"] for i in s)
