"""Run config files: YAML in, ``--set key.path=value`` overrides, errors a user can act on, the
schema's reference for docs/engine.md. (Saving and hashing a resolved config: ``engine.config_files``.)

Every problem (not only the first) becomes a ``tailteacher.errors.Problem`` naming the file (or
the ``--set`` that caused it), the dotted key (``train.lr``) and what is allowed there: for an
unknown key the keys of that level, for a wrong type the type expected. The CLI turns the
``InputError`` into exit code 2 without a traceback.

YAML note: PyYAML reads ``4e-5`` (no dot) as a string; our loader reads it as a number, as
YAML 1.2 and every user do.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import types
import typing
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from .config import Config
from .errors import InputError, Problem
from .settings import is_run_only

M = TypeVar("M", bound=BaseModel)
TOP = "(top level)"


class _Loader(yaml.SafeLoader):  # type: ignore[misc]
    """SafeLoader that also reads ``1e-5`` and ``4E+3`` as floats."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)(?:[eE][-+]?[0-9]+)$"),
    list("-+0123456789."),
)


def parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "yaml"
        raise InputError([Problem(source, "yaml", where, str(err).replace("\n", " "))]) from None


# -- the schema, walked by key path -----------------------------------------------------------


def _submodel(annotation: Any) -> type[BaseModel] | None:
    """The model class inside ``annotation`` (``X``, ``X | None``), if there is one."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _submodel(arg)
            if found is not None:
                return found
    return None


def describe_type(annotation: Any) -> str:
    """What a value of this annotation looks like, in words."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return describe_type(args[0])
    if origin is tuple:
        inner = describe_type(args[0]).removeprefix("a ").removeprefix("an ")
        plural = "lists" + inner.removeprefix("list") if inner.startswith("list ") else inner + "s"
        return f"a list of {plural}" if args[-1] is Ellipsis else f"a list of {len(args)} {plural}"
    if origin in (typing.Union, types.UnionType):
        parts = [describe_type(a) for a in args if a is not type(None)]
        return " or ".join(parts) + (" or null" if type(None) in args else "")
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is list:
        return (
            f"a list of {describe_type(args[0]).removeprefix('a ').removeprefix('an ')}s"
            if args
            else "a list"
        )
    model = _submodel(annotation)
    if model is not None:
        return "a mapping with keys " + ", ".join(_settable(model))
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _settable(model: type[BaseModel]) -> list[str]:
    """The keys a config file may set: excluded fields (``model.num_classes``) come from the data."""
    return [key for key, field in model.model_fields.items() if not field.exclude]


def _allowed(model: type[BaseModel], where: str) -> str:
    return f"allowed keys in {where}: " + ", ".join(_settable(model))


def _dotted(path: Sequence[str]) -> str:
    return ".".join(path) if path else TOP


def _resolve(schema: type[BaseModel], path: Sequence[str]) -> tuple[type[BaseModel] | None, Any, str | None]:
    """Walk ``path`` through the schema: (model holding the last key, its annotation, problem)."""
    model: type[BaseModel] | None = schema
    annotation: Any = schema
    for i, key in enumerate(path):
        if model is None:
            return None, None, f"{_dotted(path[:i])} is a value, not a section"
        if key not in model.model_fields:
            return model, None, f"unknown key; {_allowed(model, _dotted(path[:i]))}"
        annotation = model.model_fields[key].annotation
        if i < len(path) - 1:
            model = _submodel(annotation)
    return model, annotation, None


# -- loading ----------------------------------------------------------------------------------


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.lr=1e-4"`` → (["train", "lr"], 0.0001): the value is read as YAML."""
    key, sep, value = text.partition("=")
    path = key.strip().split(".")
    if not sep or not all(path):
        raise InputError([Problem(f"--set {text}", "override", key or "?", "expected KEY.PATH=VALUE")])
    return path, parse_yaml(value, f"--set {text}")


def apply_overrides(
    raw: dict[str, Any], overrides: Iterable[str], schema: type[BaseModel] = Config
) -> tuple[dict[str, Any], dict[str, str]]:
    """``raw`` with each ``--set`` applied in order; also {dotted key: the --set text} of what was set.
    An unknown key path is an error that lists the keys allowed where it went wrong."""
    problems, set_by = [], {}
    for text in overrides:
        path, value = parse_override(text)
        _, _, problem = _resolve(schema, path)
        if problem is not None:
            problems.append(Problem(f"--set {text}", "override", _dotted(path), problem))
            continue
        node = raw
        for key in path[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        node[path[-1]] = value
        set_by[_dotted(path)] = f"--set {text}"
    if problems:
        raise InputError(problems)
    return raw, set_by


def _problem(schema: type[BaseModel], err: Any, source: str, set_by: dict[str, str]) -> Problem:
    path: list[str] = []
    model: type[BaseModel] | None = schema
    annotation: Any = schema
    for key in err["loc"]:
        if model is None or not isinstance(key, str) or key not in model.model_fields:
            if err["type"] == "extra_forbidden" and isinstance(key, str):
                path.append(key)
            break
        path.append(key)
        annotation = model.model_fields[key].annotation
        model = _submodel(annotation)
    kind, given = err["type"], err.get("input")
    shown = "" if isinstance(given, dict) else f", got {given!r}"
    checked = str(err["msg"]).removeprefix("Value error, ")
    head, sep, rest = checked.partition(": ")
    if kind == "value_error" and sep and model is not None and head in _settable(model):
        # a section's own check ("roi_positive_fraction: expected …") names its key: file it there
        path.append(head)
        dotted, message = _dotted(path), rest
        return Problem(_origin(set_by, dotted, source), "config", dotted, message)
    dotted = _dotted(path)
    if kind == "extra_forbidden":
        parent, _, _ = _resolve(schema, path)
        message = f"unknown key; {_allowed(parent or schema, _dotted(path[:-1]))}"
    elif kind == "missing":
        message = f"missing; expected {describe_type(annotation)}"
    elif kind.endswith("_type") or kind in ("literal_error", "int_from_float", "bool_parsing", "int_parsing"):
        message = f"expected {describe_type(annotation)}{shown}"
    else:
        message = str(err["msg"]).removeprefix("Value error, ") + shown
    return Problem(_origin(set_by, dotted, source), "config", dotted, message)


def _origin(set_by: dict[str, str], dotted: str, source: str) -> str:
    """The ``--set`` that set ``dotted``, one of its keys, or the section holding it (``--set
    data={}`` leaves ``data.train_json`` missing); else the file."""
    for key, text in reversed(set_by.items()):
        if key == dotted or key.startswith(dotted + ".") or dotted.startswith(key + "."):
            return text
    return source


def validate_config(
    raw: Any,
    source: str,
    schema: type[M] = Config,  # type: ignore[assignment]
    set_by: dict[str, str] | None = None,
) -> M:
    """Check a parsed mapping against ``schema``; every problem in one ``InputError``."""
    if not isinstance(raw, dict):
        message = (
            f"expected a mapping of sections ({', '.join(schema.model_fields)}), got {type(raw).__name__}"
        )
        raise InputError([Problem(source, "config", TOP, message)])
    try:
        return schema.model_validate(raw)
    except ValidationError as exc:
        problems: dict[str, Problem] = {}
        for err in exc.errors():
            problem = _problem(schema, err, source, set_by or {})
            problems.setdefault(problem.field, problem)  # a union reports once per member
        raise InputError(list(problems.values())) from None


#: The configs shipped inside the package (``tailteacher/configs/NAME.yaml``).
PACKAGED_CONFIGS = Path(__file__).resolve().parent / "configs"


def packaged_configs() -> list[str]:
    """Names of the shipped configs, e.g. ``["bench", "demo", "lvis_eva02_l", "scarce"]``."""
    return sorted(p.stem for p in PACKAGED_CONFIGS.glob("*.yaml"))


def resolve_config_path(path: str | os.PathLike[str]) -> Path:
    """``path`` itself when it is a file or has a folder or suffix; else the shipped config of that
    name (a folder called ``demo``, e.g. a run folder, does not hide the shipped ``demo``)."""
    p = Path(path)
    if p.is_file() or p.suffix or len(p.parts) > 1:
        return p
    shipped = PACKAGED_CONFIGS / f"{p.name}.yaml"
    return shipped if shipped.is_file() else p


#: Top-level key naming the config a file builds on (mmdetection's spelling; detectron2: _BASE_).
BASE_KEY = "_base_"


def _read_yaml_file(path: Path) -> Any:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise InputError([Problem(source, "file", "-", f"cannot read: {err.strerror or err}")]) from None
    except UnicodeDecodeError as err:
        raise InputError([Problem(source, f"byte {err.start}", "-", "not UTF-8 text")]) from None
    raw = parse_yaml(text, source)
    return {} if raw is None else raw


def merge_config_dicts(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """``child`` over ``base``: mappings merge key by key, anything else (lists included) is
    replaced by the child's value. Neither input is changed."""
    out = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_config_dicts(out[key], value)
        else:
            out[key] = value
    return out


def _leaves(raw: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths of the non-mapping values of a nested dict."""
    out = []
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        out += _leaves(value, dotted + ".") if isinstance(value, dict) and value else [dotted]
    return out


def _base_path(path: Path, named: str) -> Path:
    """Where ``_base_: named`` of the file ``path`` points: a name with a folder or a suffix is a
    path relative to the file's folder; a bare name is a shipped config (never the working
    directory, so a stray file called ``demo`` cannot replace the shipped one)."""
    p = Path(named)
    if p.suffix or len(p.parts) > 1:
        return p if p.is_absolute() else path.parent / p
    return PACKAGED_CONFIGS / f"{named}.yaml"


def _read_with_bases(path: Path, chain: tuple[Path, ...]) -> tuple[Any, dict[str, str]]:
    """The file's mapping merged over the config its ``_base_`` names (recursively), and for each
    dotted key that comes from a base, that base's path (so a problem there names its file)."""
    raw = _read_yaml_file(path)
    if not isinstance(raw, dict) or BASE_KEY not in raw:
        return raw, {}
    source = str(path)
    raw = dict(raw)
    named = raw.pop(BASE_KEY)
    if not isinstance(named, str) or not named:
        expected = "expected a config path or a shipped config's name"
        raise InputError([Problem(source, TOP, BASE_KEY, f"{expected}, got {named!r}")])
    base_path = _base_path(path, named)
    if not base_path.is_file():
        raise InputError([Problem(source, TOP, BASE_KEY, f"no config file or shipped config {named!r}")])
    seen = (*chain, path.resolve())
    if base_path.resolve() in seen:
        raise InputError([Problem(source, TOP, BASE_KEY, f"{named!r} builds on this file again (a cycle)")])
    base, origins = _read_with_bases(base_path, seen)
    if not isinstance(base, dict):
        got = type(base).__name__
        raise InputError([Problem(str(base_path), TOP, "yaml", f"expected a mapping of sections, got {got}")])
    from_base = {k: origins.get(k, str(base_path)) for k in _leaves(base)}
    mine = set(_leaves(raw))
    kept = {k: v for k, v in from_base.items() if not any(k == m or k.startswith(m + ".") for m in mine)}
    return merge_config_dicts(base, raw), kept


def load_config(
    path: str | os.PathLike[str],
    overrides: Iterable[str] = (),
    schema: type[M] = Config,  # type: ignore[assignment]
) -> M:
    """Read a YAML config, apply ``--set`` overrides, validate. ``path`` may also name a config
    shipped with the package (``demo``, ``bench``, ``lvis_eva02_l``, ``scarce``) when no such file
    exists. A top-level ``_base_: OTHER`` builds on another config: OTHER (a path with a suffix or
    folder, relative to this file; or a bare shipped config's name) is read first and this file's
    keys merged over it (D108); a problem in a key that came from OTHER names OTHER's file."""
    path = resolve_config_path(path)
    source = str(path)
    raw, set_by = _read_with_bases(path, ())
    if isinstance(raw, dict):
        raw, set_here = apply_overrides(raw, overrides, schema)
        set_by = {**set_by, **set_here}
    return validate_config(raw, source, schema, set_by)


# -- the command line -------------------------------------------------------------------------


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """``CONFIG`` (a YAML file, positional), ``--set KEY.PATH=VALUE`` (repeatable) and ``--resume``."""
    parser.add_argument(
        "config",
        type=Path,
        metavar="CONFIG",
        help="YAML config file, or the name of a shipped one: " + ", ".join(packaged_configs()),
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY.PATH=VALUE",
        help="override one config value (YAML), e.g. --set train.lr=1e-4; repeatable",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from the run folder's latest checkpoint"
    )


def config_from_args(args: argparse.Namespace, schema: type[M] = Config) -> M:  # type: ignore[assignment]
    """The config named by ``add_config_arguments``' options."""
    overrides = list(args.overrides) + (["run.resume=true"] if args.resume else [])
    return load_config(args.config, overrides, schema)


def _bounds(metadata: Iterable[Any]) -> str:
    signs = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤", "min_length": "length ≥", "max_length": "length ≤"}
    parts = [
        f"{sign} {getattr(m, name)}" for m in metadata for name, sign in signs.items() if hasattr(m, name)
    ]
    return f" ({', '.join(parts)})" if parts else ""


def _reference_rows(model: type[BaseModel], prefix: str = "") -> list[str]:
    rows = []
    for key, sub in model.model_fields.items():
        if sub.exclude:
            continue
        nested = _submodel(sub.annotation)
        if nested is not None:  # a nested section: its keys, dotted (``student.strong_augmentation.hue``)
            rows += _reference_rows(nested, f"{prefix}{key}.")
            continue
        default = (
            "required" if sub.is_required() else f"`{json.dumps(sub.get_default(call_default_factory=True))}`"
        )
        kind = describe_type(sub.annotation) + _bounds(sub.metadata)
        meaning = sub.description or ""
        if is_run_only(sub):
            meaning += " *(run-only: not in any config or stage hash)*"
        rows.append(f"| `{prefix}{key}` | {kind} | {default} | {meaning} |")
    return rows


def config_reference(schema: type[BaseModel] = Config) -> str:
    """Markdown tables of every section's keys, types, defaults and meaning (for docs/engine.md);
    a nested section's keys appear dotted."""
    lines = []
    for section, field in schema.model_fields.items():
        model = _submodel(field.annotation)
        if model is None:
            continue
        lines += [f"### `{section}`", "", "| key | type | default | meaning |", "|---|---|---|---|"]
        lines += _reference_rows(model)
        lines.append("")
    return "\n".join(lines)
