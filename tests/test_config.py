"""params.yaml validation: typed sections, unknown keys and bad values named, schema in sync."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest
import yaml
from pydantic import ValidationError

from helpers import REPO
from stf.config import ParamsError, load_params, params_json_schema, params_json_schema_text, parse_params

PARAMS = REPO / "params.yaml"
SCHEMA = REPO / "workflow" / "schemas" / "params.schema.json"


@pytest.fixture()
def raw() -> dict:
    return yaml.safe_load(PARAMS.read_text())


def test_repo_params_load_and_expose_active_profile():
    p = load_params(PARAMS)
    assert p.profile in p.profiles
    assert p.sizes is p.profiles[p.profile]
    assert set(p.settings) == {"ntu60-xsub", "ntu60-xview", "ntu120-xsub", "ntu120-xset", "kinetics"}
    assert p.stf.lambdas.e == 0.01 and p.stf.lambdas.d == 0.1 and p.stf.lambdas.c == 0.1 and p.stf.lambdas.gk == 0.01
    assert p.profiles["paper"].frames == 300
    assert p.profiles["paper"].widths == [96, 192, 384]


def test_every_profile_is_valid_when_active(raw):
    for name in raw["profiles"]:
        raw2 = copy.deepcopy(raw)
        raw2["profile"] = name
        assert parse_params(raw2).sizes.frames > 0


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda r: r["stf"]["lambdas"].__setitem__("e", -0.1), "stf.lambdas.e"),
        (lambda r: r["stf"]["lambdas"].__setitem__("typo", 1.0), "stf.lambdas.typo"),
        (lambda r: r.__setitem__("unknown_section", {}), "unknown_section"),
        (lambda r: r["train"].__setitem__("momentum", "fast"), "train.momentum"),
        (lambda r: r["split"].__setitem__("fractions", [10, 150]), "split.fractions"),
        (lambda r: r["settings"].__setitem__("ntu90-xsub", {"dataset": "ntu60", "benchmark": "xsub"}), "ntu90-xsub"),
        (lambda r: r["settings"]["kinetics"].__setitem__("benchmark", "xsub"), "settings.kinetics"),
        (lambda r: r.__setitem__("profile", "huge"), "profile 'huge'"),
        (lambda r: r["profiles"]["tiny"].__setitem__("widths", [8, 16]), "widths"),
        (lambda r: r["stf"].__setitem__("ensemble", ["dcg", "zz"]), "zz"),
        # strict types: a boolean or a numeric string is not a number, a float is not an int
        (lambda r: r["train"]["lr"].__setitem__("ntu60", True), "train.lr.ntu60"),
        (lambda r: r["stf"].__setitem__("lr", "0.001"), "stf.lr"),
        (lambda r: r["stf"]["lambdas"].__setitem__("e", "1e-2"), "stf.lambdas.e"),
        (lambda r: r["profiles"]["tiny"].__setitem__("frames", 24.0), "profiles.tiny.frames"),
        (
            lambda r: r["profiles"]["tiny"].__setitem__("epochs", {**r["profiles"]["tiny"]["epochs"], "ntu60": "10"}),
            "profiles.tiny.epochs.ntu60",
        ),  # fmt: skip
        (lambda r: r["train"].__setitem__("nesterov", 1), "train.nesterov"),
        (lambda r: r["split"].__setitem__("seed", False), "split.seed"),
    ],
)
def test_invalid_values_fail_naming_the_key(raw, mutate, needle):
    mutate(raw)
    with pytest.raises(ParamsError) as err:
        parse_params(raw, "params.yaml")
    assert needle in str(err.value)
    assert str(err.value).startswith("params.yaml")


def test_yaml_ints_are_accepted_where_floats_are_expected(raw):
    raw["fuse"]["bone_weight"] = 1
    raw["train"]["lr"]["ntu60"] = 1
    raw["stf"]["lambdas"]["e"] = 0
    p = parse_params(raw)
    assert p.fuse.bone_weight == 1.0 and isinstance(p.fuse.bone_weight, float)
    assert p.train.lr["ntu60"] == 1.0 and p.stf.lambdas.e == 0.0


def test_strict_errors_are_one_line_naming_the_key(tmp_path):
    text = PARAMS.read_text().replace("    ntu60: 0.05\n", "    ntu60: true\n", 1)
    assert "ntu60: true" in text
    bad = tmp_path / "params.yaml"
    bad.write_text(text)
    with pytest.raises(ParamsError) as err:
        load_params(bad)
    assert "\n" not in str(err.value) and "train.lr.ntu60: Input should be a valid number" in str(err.value)


def test_params_are_frozen():
    p = load_params(PARAMS)
    with pytest.raises(ValidationError):
        p.stf.lambdas.e = 1.0  # type: ignore[misc]


def test_unreadable_and_non_yaml_files(tmp_path):
    with pytest.raises(ParamsError, match="cannot read"):
        load_params(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("profile: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("3\n")
    with pytest.raises(ParamsError, match="mapping"):
        load_params(scalar)


def test_committed_schema_matches_models():
    assert SCHEMA.read_text() == params_json_schema_text(), "run: stf schema --out workflow/schemas/params.schema.json"


def test_schema_accepts_repo_params_and_rejects_unknown_keys(raw):
    schema = params_json_schema()
    jsonschema.validate(raw, schema)
    raw["stf"]["lambdas"]["typo"] = 1.0
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(raw, schema)
    assert json.loads(SCHEMA.read_text())["additionalProperties"] is False
